// The dashboard's charts, drawn by Chart.js from our own static files with
// the numbers the page carries in #dashboard-data (the same numbers are in
// the tables beside each chart). After drawing, each canvas gets
// data-rendered="<data points drawn>" (0 when there was nothing to draw).
"use strict";

(function () {
  const COLOURS = ["#2563eb", "#16a34a", "#d97706", "#9333ea", "#dc2626", "#0891b2"];

  function points(values) {
    return values.filter(function (v) { return v !== null && v !== undefined; }).length;
  }

  function mark(canvas, count) {
    canvas.setAttribute("data-rendered", String(count));
    if (!count) {
      const note = document.createElement("p");
      note.className = "empty";
      note.textContent = "No data to draw yet.";
      canvas.parentNode.insertBefore(note, canvas.nextSibling);
    }
  }

  function baseOptions(yTitle) {
    return {
      responsive: true,
      maintainAspectRatio: false,
      animation: false,
      scales: { y: { beginAtZero: true, title: { display: !!yTitle, text: yTitle } } },
    };
  }

  const DRAW = {
    retention: function (canvas, d) {
      const target = d.labels.map(function () { return d.target; });
      new Chart(canvas, {
        type: "line",
        data: {
          labels: d.labels,
          datasets: [
            { label: "retention (%)", data: d.values, borderColor: COLOURS[0],
              backgroundColor: COLOURS[0], spanGaps: true, tension: 0.2 },
            { label: "target (%)", data: target, borderColor: "#dc2626", borderDash: [6, 4],
              pointRadius: 0, borderWidth: 1.5 },
          ],
        },
        options: baseOptions("returned (%)"),
      });
      return points(d.values);
    },
    "kpi-channels": function (canvas, d) {
      const datasets = d.series.map(function (s, i) {
        return { label: s.label + " (%)", data: s.values, backgroundColor: COLOURS[i % COLOURS.length] };
      });
      new Chart(canvas, { type: "bar", data: { labels: d.labels, datasets: datasets },
        options: baseOptions("%") });
      return d.series.reduce(function (n, s) { return n + points(s.values); }, 0);
    },
    tiers: function (canvas, d) {
      new Chart(canvas, {
        type: "bar",
        data: { labels: d.labels, datasets: [{ label: "customers", data: d.values,
          backgroundColor: COLOURS.slice(0, d.values.length) }] },
        options: Object.assign(baseOptions("customers"), { plugins: { legend: { display: false } } }),
      });
      return points(d.values);
    },
    churn: function (canvas, d) {
      new Chart(canvas, {
        type: "bar",
        data: { labels: d.labels, datasets: [{ label: "customers", data: d.values,
          backgroundColor: "#d97706", barPercentage: 1.0, categoryPercentage: 1.0 }] },
        options: Object.assign(baseOptions("customers"), { plugins: { legend: { display: false } } }),
      });
      return points(d.values);
    },
  };
  const KEYS = { retention: "retention", "kpi-channels": "kpi_channels", tiers: "tiers", churn: "churn" };

  document.addEventListener("DOMContentLoaded", function () {
    const node = document.getElementById("dashboard-data");
    if (!node) return;
    const data = JSON.parse(node.textContent);
    document.querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
      const name = canvas.getAttribute("data-chart");
      const series = data[KEYS[name]];
      if (!DRAW[name] || !series || typeof Chart === "undefined") {
        mark(canvas, 0);
        return;
      }
      mark(canvas, DRAW[name](canvas, series));
    });
  });
})();
