/*
 * Condition builder for rule segments.
 *
 * Turns the conditions textarea (JSON, the no-JavaScript fallback) into rows of
 * field / operator / value controls, writes every change back into the
 * textarea, and asks the admin's preview endpoint how many customers match,
 * showing the count and a sample under the form. The server checks everything
 * again on save; this script only helps people build the list.
 */
(function () {
  "use strict";

  var PREVIEW_DELAY_MS = 350;

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) {
      if (attrs[key] === undefined || attrs[key] === null) return;
      if (key === "text") node.textContent = attrs[key];
      else node.setAttribute(key, attrs[key]);
    });
    (children || []).forEach(function (child) {
      node.append(child);
    });
    return node;
  }

  function select(options, value, label, multiple) {
    var node = el("select", { "aria-label": label, multiple: multiple ? "multiple" : null });
    options.forEach(function (option) {
      var chosen = multiple ? (value || []).map(String).indexOf(String(option[0])) >= 0
                            : String(option[0]) === String(value);
      node.append(el("option", { value: option[0], text: option[1], selected: chosen ? "selected" : null }));
    });
    return node;
  }

  function chosen(node) {
    return Array.prototype.filter.call(node.options, function (o) { return o.selected; })
      .map(function (o) { return o.value; });
  }

  function number(value, label, step, min) {
    return el("input", {
      type: "number", step: step || "1", min: min, "aria-label": label,
      value: value === undefined || value === null ? "" : value,
      class: "segment-number",
    });
  }

  // A whole number stays a number in the JSON; anything else goes as typed,
  // so the server can say what is wrong with it.
  function asInteger(text) {
    return /^-?\d+$/.test(text.trim()) ? parseInt(text, 10) : text.trim();
  }

  function asFamily(text) {
    return /^\d+$/.test(text) ? parseInt(text, 10) : text;
  }

  // --- value editors: one per value type; each returns {node, read} -------------------

  function numericEditor(spec, op, cond) {
    var step = spec.type === "decimal" ? "0.01" : "1";
    var read = spec.type === "decimal" ? function (t) { return t.trim(); } : asInteger;
    if (op === "between") {
      var pair = Array.isArray(cond.value) ? cond.value : [cond.value, ""];
      var low = number(pair[0], "from", step, 0);
      var high = number(pair[1], "to", step, 0);
      return {
        node: el("span", {}, [low, " and ", high]),
        read: function () { return { value: [read(low.value), read(high.value)] }; },
      };
    }
    var one = number(Array.isArray(cond.value) ? cond.value[0] : cond.value, "value", step, 0);
    return { node: one, read: function () { return { value: read(one.value) }; } };
  }

  function choiceEditor(spec, op, cond) {
    var many = spec.type === "choices" || op === "in";
    var current = many && !Array.isArray(cond.value) && cond.value !== undefined ? [cond.value] : cond.value;
    var node = select(spec.choices, current, "value", many);
    if (many) node.size = Math.min(Math.max(spec.choices.length, 2), 6);
    var cast = spec.type === "family" ? asFamily : function (v) { return v; };
    return {
      node: node,
      read: function () {
        return { value: many ? chosen(node).map(cast) : cast(node.value) };
      },
    };
  }

  // An optional "in the last N days" after another editor (a field whose
  // catalogue entry lists the within_days extra), kept when a row is edited.
  function withinDays(editor, cond) {
    var days = number(cond.within_days, "within days", "1", 1);
    return {
      node: el("span", {}, [editor.node, " in the last ", days, " days (optional)"]),
      read: function () {
        var out = editor.read();
        if (days.value.trim()) out.within_days = asInteger(days.value);
        return out;
      },
    };
  }

  function hasWithinDays(spec) {
    return (spec.extras || []).indexOf("within_days") !== -1;
  }

  function choicesEditor(spec, op, cond) {
    var editor = choiceEditor(spec, op, cond);
    return hasWithinDays(spec) ? withinDays(editor, cond) : editor;
  }

  function familyEditor(spec, op, cond) {
    if (!spec.choices.length) {
      return { node: el("em", { text: "No product families yet." }), read: function () { return { value: "" }; } };
    }
    return withinDays(choiceEditor(spec, op, cond), cond);
  }

  function consentEditor(spec, op, cond) {
    var value = cond.value || {};
    var channel = select(spec.channels, value.channel, "channel");
    var status = select(spec.statuses, value.status, "consent status");
    return {
      node: el("span", {}, [channel, " is ", status]),
      read: function () { return { value: { channel: channel.value, status: status.value } }; },
    };
  }

  var kindsListId = 0;

  function touchpointEditor(spec, op, cond) {
    var value = cond.value || {};
    var listId = "segment-touchpoint-kinds-" + (++kindsListId);
    var kinds = el("datalist", { id: listId }, spec.kinds.map(function (k) { return el("option", { value: k }); }));
    var kind = el("input", { type: "text", list: listId, "aria-label": "touchpoint kind",
                             placeholder: "message.opened", value: value.kind || "" });
    var count = number(value.min_count || 1, "at least this many", "1", 1);
    var days = number(value.within_days || 30, "in the last days", "1", 1);
    return {
      node: el("span", {}, [count, " × ", kind, kinds, " in the last ", days, " days"]),
      read: function () {
        return { value: { kind: kind.value.trim(), within_days: asInteger(days.value),
                          min_count: asInteger(count.value) } };
      },
    };
  }

  var EDITORS = {
    integer: numericEditor,
    decimal: numericEditor,
    choice: choicesEditor,
    choices: choicesEditor,
    family: familyEditor,
    consent: consentEditor,
    touchpoint: touchpointEditor,
  };

  // --- the builder -------------------------------------------------------------------------

  function Builder(root) {
    this.root = root;
    this.input = document.getElementById(root.dataset.input);
    this.fields = {};
    // Fields registered with a value type this script cannot edit stay JSON-only.
    this.catalogue = JSON.parse(document.getElementById(root.dataset.catalogue).textContent)
      .filter(function (spec) { return EDITORS[spec.type]; });
    this.catalogue.forEach(function (spec) { this.fields[spec.name] = spec; }, this);
    this.list = root.querySelector(".segment-builder-rows");
    this.rows = [];
    this.panel = document.getElementById("segment-preview");
    this.timer = null;
    this.sequence = 0;
  }

  Builder.prototype.start = function () {
    var conditions;
    try {
      conditions = JSON.parse(this.input.value.trim() || "[]") || [];
    } catch (e) {
      return; // the person is fixing JSON by hand: leave the textarea to them
    }
    var fields = this.fields;
    var known = Array.isArray(conditions) && conditions.every(function (c) {
      return c && typeof c === "object" && fields[c.field] && EDITORS[fields[c.field].type];
    });
    if (!known) return;
    this.root.parentNode.querySelector(".segment-json-fallback").hidden = true;
    this.root.hidden = false;
    conditions.forEach(this.addRow, this);
    this.showErrors(JSON.parse(document.getElementById(this.root.dataset.errors).textContent));
    var self = this;
    this.root.querySelector(".segment-builder-add").addEventListener("click", function () {
      self.addRow({ field: self.catalogue[0].name });
      self.changed();
    });
    Array.prototype.forEach.call(this.input.form.querySelectorAll('[name="match"]'), function (m) {
      m.addEventListener("change", function () { self.changed(); });
    });
    var counted = this.panel && this.panel.querySelector(".segment-preview-count strong");
    if (this.rows.length && !counted) this.preview(); // e.g. the form came back with errors
  };

  Builder.prototype.addRow = function (cond) {
    var self = this;
    var row = { cond: cond, node: el("li", { class: "segment-row" }), error: el("p", { class: "segment-row-error" }) };
    row.render = function () {
      var spec = self.fields[row.cond.field];
      var op = spec.ops.some(function (o) { return o[0] === row.cond.op; }) ? row.cond.op : spec.ops[0][0];
      row.cond.op = op;
      var field = select(self.catalogue.map(function (f) { return [f.name, f.label]; }), spec.name, "field");
      var ops = select(spec.ops, op, "operator");
      row.editor = EDITORS[spec.type](spec, op, row.cond);
      var remove = el("button", { type: "button", class: "button segment-row-remove", text: "Remove",
                                  "aria-label": "Remove this condition" });
      field.addEventListener("change", function () {
        row.cond = { field: field.value };
        row.render();
        self.changed();
      });
      ops.addEventListener("change", function () {
        row.cond = Object.assign(row.read(), { op: ops.value });
        row.render();
        self.changed();
      });
      remove.addEventListener("click", function () {
        self.rows.splice(self.rows.indexOf(row), 1);
        row.node.remove();
        self.changed();
      });
      row.node.replaceChildren(field, ops, row.editor.node, remove, row.error);
      row.node.title = spec.help || "";
    };
    row.read = function () {
      return Object.assign({ field: row.cond.field, op: row.cond.op }, row.editor.read());
    };
    row.node.addEventListener("input", function () { self.changed(); });
    row.render();
    this.rows.push(row);
    this.list.append(row.node);
  };

  Builder.prototype.conditions = function () {
    return this.rows.map(function (row) { return row.read(); });
  };

  Builder.prototype.match = function () {
    var checked = this.input.form.querySelector('[name="match"]:checked');
    var any = this.input.form.querySelector('[name="match"]');
    return checked ? checked.value : (any && any.value) || "all";
  };

  Builder.prototype.changed = function () {
    this.input.value = JSON.stringify(this.conditions(), null, 1);
    clearTimeout(this.timer);
    this.timer = setTimeout(this.preview.bind(this), PREVIEW_DELAY_MS);
  };

  Builder.prototype.preview = function () {
    if (!this.panel || !this.panel.dataset.url) return;
    var count = this.panel.querySelector(".segment-preview-count");
    if (!this.rows.length) {
      count.textContent = "No conditions: nobody is a member.";
      this.showSample([]);
      return;
    }
    var self = this;
    var sequence = ++this.sequence;
    var query = new URLSearchParams({ match: this.match(), conditions: JSON.stringify(this.conditions()) });
    count.textContent = "Counting…";
    fetch(this.panel.dataset.url + "?" + query.toString(), {
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    })
      .then(function (response) {
        return response.json().then(function (body) { return { ok: response.ok, body: body }; });
      })
      .then(function (result) {
        if (sequence !== self.sequence) return; // a newer request is on its way
        if (result.ok) {
          var n = result.body.count;
          count.textContent = n + (n === 1 ? " customer matches now." : " customers match now.");
          self.showErrors({});
          self.showSample(result.body.sample);
        } else {
          var error = result.body.error || {};
          count.textContent = error.message || "These conditions cannot be counted.";
          self.showErrors(error.fields || {});
          self.showSample([]);
        }
      })
      .catch(function () {
        if (sequence === self.sequence) count.textContent = "Could not count members just now.";
      });
  };

  Builder.prototype.showSample = function (sample) {
    var table = this.panel && this.panel.querySelector(".segment-preview-sample");
    if (!table) return;
    table.tBodies[0].replaceChildren.apply(table.tBodies[0], sample.map(function (member) {
      var link = el("a", { href: member.url, text: member.name || String(member.id) });
      return el("tr", {}, [el("td", {}, [link]), el("td", { text: member.email })]);
    }));
    table.hidden = !sample.length;
  };

  // Errors come keyed like "conditions[1].value"; each goes under its row.
  Builder.prototype.showErrors = function (fields) {
    this.rows.forEach(function (row) { row.error.textContent = ""; });
    Object.keys(fields).forEach(function (key) {
      var found = /^conditions\[(\d+)\]\.?(.*)$/.exec(key);
      var row = found && this.rows[parseInt(found[1], 10)];
      if (row) row.error.textContent = (found[2] ? found[2] + ": " : "") + fields[key];
    }, this);
  };

  function startAll() {
    Array.prototype.forEach.call(document.querySelectorAll(".segment-builder"), function (root) {
      if (root.dataset.started) return;
      root.dataset.started = "1";
      new Builder(root).start();
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", startAll);
  else startAll();
})();
