// The experiment results chart: cumulative conversion per variant with its
// 95% interval as a shaded band, drawn by Chart.js from our own static files.
// The same numbers fill the table under the chart and its CSV download.
"use strict";

(function () {
  const COLOURS = ["#64748b", "#2563eb", "#16a34a", "#d97706", "#9333ea", "#dc2626"];

  function percent(value) {
    return value === null || value === undefined ? null : Math.round(value * 10000) / 100;
  }

  function rows(data) {
    return data.days.map(function (day, i) {
      const cells = [day];
      data.series.forEach(function (s) {
        const p = s.points[i];
        cells.push(p.n, p.rate, p.low, p.high);
      });
      return cells;
    });
  }

  function fillTable(data) {
    const body = document.querySelector("#chart-table tbody");
    if (!body) return;
    rows(data).forEach(function (cells) {
      const tr = document.createElement("tr");
      cells.forEach(function (cell) {
        const td = document.createElement("td");
        td.textContent = cell === null ? "" : String(cell);
        tr.appendChild(td);
      });
      body.appendChild(tr);
    });
    const link = document.getElementById("chart-csv");
    if (link) {
      const header = ["day"];
      data.series.forEach(function (s) {
        header.push(s.key + "_n", s.key + "_rate", s.key + "_low", s.key + "_high");
      });
      const lines = [header].concat(rows(data)).map(function (cells) {
        return cells.map(function (c) { return c === null ? "" : String(c); }).join(",");
      });
      link.href = "data:text/csv;charset=utf-8," + encodeURIComponent(lines.join("\n") + "\n");
    }
  }

  function draw(data) {
    const canvas = document.getElementById("conversion-chart");
    if (!canvas || typeof Chart === "undefined" || !data.days.length) return;
    const datasets = [];
    data.series.forEach(function (s, index) {
      const colour = COLOURS[index % COLOURS.length];
      const low = s.points.map(function (p) { return percent(p.low); });
      const high = s.points.map(function (p) { return percent(p.high); });
      datasets.push({
        label: s.name + " 95% low", data: low, borderWidth: 0, pointRadius: 0,
        fill: false, borderColor: "transparent",
      });
      datasets.push({
        label: s.name + " 95% interval", data: high, borderWidth: 0, pointRadius: 0,
        fill: "-1", backgroundColor: colour + "33", borderColor: "transparent",
      });
      datasets.push({
        label: s.name, data: s.points.map(function (p) { return percent(p.rate); }),
        borderColor: colour, backgroundColor: colour, borderWidth: 2, pointRadius: 0,
        fill: false, spanGaps: true,
      });
    });
    canvas.chart = new Chart(canvas, {
      type: "line",
      data: { labels: data.days, datasets: datasets },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        interaction: { mode: "index", intersect: false },
        scales: {
          y: { title: { display: true, text: "converted (%)" }, beginAtZero: true },
          x: { title: { display: true, text: "conversion window closed by" } },
        },
        plugins: {
          legend: {
            labels: { filter: function (item) { return !/95% (low|interval)$/.test(item.text); } },
          },
        },
      },
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    const node = document.getElementById("chart-data");
    if (!node) return;
    const data = JSON.parse(node.textContent);
    fillTable(data);
    draw(data);
  });
})();
