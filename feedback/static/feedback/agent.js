/*
 * Progressive enhancement for the callback screens (they work without it).
 *
 * - SLA countdowns: every [data-deadline] says "due in 7 min" / "overdue by
 *   3 min", updated each minute, worded and rounded as the server words it
 *   (what is left rounds down, what is late rounds up). The server's clock at
 *   render time (body[data-server-now]) corrects for a wrong device clock.
 * - Actions: a form with data-async="<id>" is sent with fetch; the server
 *   answers the HTML of that element (success or a 4xx with the reason), which
 *   replaces it. On a network error or an unexpected answer the form is sent
 *   the ordinary way.
 */
(function () {
  "use strict";

  var skew = 0;

  function span(minutes) {
    if (minutes < 60) return minutes + " min";
    var hours = Math.floor(minutes / 60);
    var rest = minutes % 60;
    if (hours < 24) return rest ? hours + " h " + rest + " min" : hours + " h";
    var days = Math.floor(hours / 24);
    hours = hours % 24;
    return hours ? days + " d " + hours + " h" : days + " d";
  }

  function wording(deadline, now) {
    var seconds = (deadline - now) / 1000;
    if (seconds >= 0) {
      var left = Math.floor(seconds / 60);
      return { text: left === 0 ? "due now" : "due in " + span(left), late: false };
    }
    return { text: "overdue by " + span(Math.ceil(-seconds / 60)), late: true };
  }

  function tick() {
    var now = Date.now() + skew;
    document.querySelectorAll("[data-deadline]").forEach(function (node) {
      var deadline = Date.parse(node.getAttribute("data-deadline"));
      if (isNaN(deadline)) return;
      var said = wording(deadline, now);
      if (node.textContent !== said.text) node.textContent = said.text;
      node.classList.toggle("late", said.late);
      var holder = node.closest("[data-sla]");
      if (holder) holder.classList.toggle("is-late", said.late);
    });
  }

  function send(event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.hasAttribute("data-async")) return;
    var target = document.getElementById(form.getAttribute("data-async"));
    if (!target || !window.fetch) return;
    event.preventDefault();
    var buttons = form.querySelectorAll("button");
    buttons.forEach(function (b) { b.disabled = true; b.setAttribute("aria-busy", "true"); });
    fetch(form.action, {
      method: "POST",
      body: new FormData(form),
      headers: { "X-Requested-With": "fetch" },
      credentials: "same-origin",
    })
      .then(function (response) {
        var type = response.headers.get("Content-Type") || "";
        if (response.status >= 500 || type.indexOf("text/html") !== 0) throw new Error("fallback");
        return response.text();
      })
      .then(function (html) {
        var holder = document.createElement("template");
        holder.innerHTML = html.trim();
        var fresh = holder.content.firstElementChild;
        if (!fresh) throw new Error("fallback");
        target.replaceWith(fresh);
        tick();
        var flash = fresh.querySelector("[data-flash]");
        if (flash) flash.focus();
      })
      .catch(function () {
        buttons.forEach(function (b) { b.disabled = false; b.removeAttribute("aria-busy"); });
        form.submit();
      });
  }

  function start() {
    var serverNow = Date.parse(document.body.getAttribute("data-server-now") || "");
    if (!isNaN(serverNow)) skew = serverNow - Date.now();
    tick();
    window.setInterval(tick, 60 * 1000);
    document.addEventListener("submit", send);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
