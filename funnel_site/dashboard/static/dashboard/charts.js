/* Funnel plugin charts: every <canvas data-chart="ID"> is drawn with Chart.js (served from our own
   static dir) from the JSON in <script id="ID" type="application/json"> (Django's json_script).
   Spec: {type: bar|funnel|line|roc|reliability|waterfall, labels, series: [{label, data, colors}],
          x_title, y_title, percent (y values are rates 0..1), value_labels (text above each bar)}. */
(function () {
  "use strict";
  var INK = "#1d2433", MUTED = "#667085", ACCENT = "#3b5bdb", LINE = "#e4e7ec";
  var fmt = new Intl.NumberFormat("en-US");
  function number(v) { return typeof v === "number" ? fmt.format(v) : v; }
  function pct(v) { return (v * 100).toFixed(v < 0.1 && v > 0 ? 1 : 0) + "%"; }

  // Text above each bar (count · rate), so a funnel is read without hovering.
  var valueLabels = {
    id: "valueLabels",
    afterDatasetsDraw: function (chart) {
      var labels = chart.options.plugins.valueLabels && chart.options.plugins.valueLabels.labels;
      if (!labels) { return; }
      var ctx = chart.ctx, meta = chart.getDatasetMeta(0);
      ctx.save();
      ctx.fillStyle = INK; ctx.textAlign = "center"; ctx.textBaseline = "bottom";
      ctx.font = "12px system-ui, sans-serif";
      meta.data.forEach(function (bar, i) { if (labels[i]) { ctx.fillText(labels[i], bar.x, bar.y - 3); } });
      ctx.restore();
    }
  };

  function axis(title, extra) {
    return Object.assign({
      title: {display: !!title, text: title || "", color: MUTED},
      grid: {color: LINE}, ticks: {color: MUTED, callback: undefined}
    }, extra || {});
  }

  function config(spec) {
    var series = spec.series || [];
    var yTicks = {color: MUTED, callback: function (v) { return spec.percent ? pct(v) : number(v); }};
    var tooltip = {callbacks: {label: function (c) {
      var v = c.parsed[spec.horizontal ? "x" : "y"];
      if (spec.type === "waterfall") { var d = c.raw; v = d[1] - d[0]; return (v >= 0 ? "+" : "") + v.toFixed(3); }
      return (c.dataset.label ? c.dataset.label + ": " : "") + (spec.percent ? pct(v) : number(v));
    }}};
    var base = {responsive: true, maintainAspectRatio: false, animation: false,
                plugins: {legend: {display: series.length > 1 || spec.type === "roc" || spec.type === "reliability"},
                          tooltip: tooltip, valueLabels: {labels: spec.value_labels}},
                layout: {padding: {top: spec.value_labels ? 18 : 4}}};
    if (spec.type === "bar" || spec.type === "funnel") {
      return {type: "bar", data: {labels: spec.labels, datasets: series.map(function (s) {
        return {label: s.label, data: s.data, backgroundColor: s.colors || ACCENT, borderRadius: 3,
                maxBarThickness: spec.type === "funnel" ? 90 : 40};
      })}, options: Object.assign(base, {scales: {
        x: axis(spec.x_title, {ticks: {color: MUTED, autoSkip: true, maxRotation: 0, autoSkipPadding: 8}, grid: {display: false}}),
        y: axis(spec.y_title, {beginAtZero: true, ticks: yTicks, max: spec.percent ? 1 : undefined})}}),
        plugins: [valueLabels]};
    }
    if (spec.type === "line") {
      return {type: "line", data: {labels: spec.labels, datasets: series.map(function (s) {
        return {label: s.label, data: s.data, borderColor: ACCENT, backgroundColor: ACCENT, spanGaps: true, tension: 0.2};
      })}, options: Object.assign(base, {scales: {
        x: axis(spec.x_title, {ticks: {color: MUTED, autoSkip: true, maxRotation: 0, autoSkipPadding: 8}}),
        y: axis(spec.y_title, {beginAtZero: true, ticks: yTicks})}})};
    }
    if (spec.type === "roc" || spec.type === "reliability") {
      var diagonal = {label: spec.type === "roc" ? "chance" : "perfect calibration", data: [{x: 0, y: 0}, {x: 1, y: 1}],
                      borderColor: "#98a2b3", borderDash: [5, 4], pointRadius: 0, showLine: true, fill: false};
      var curve = series.map(function (s) {
        return {label: s.label, data: s.data, borderColor: ACCENT, backgroundColor: "rgba(59,91,219,.55)",
                showLine: true, fill: false, pointRadius: spec.type === "roc" ? 0 : (s.radius || 4),
                pointHoverRadius: 6};
      });
      var unit = {min: 0, max: 1, ticks: {color: MUTED, stepSize: 0.25}};
      return {type: "scatter", data: {datasets: curve.concat([diagonal])}, options: Object.assign(base, {
        scales: {x: axis(spec.x_title, unit), y: axis(spec.y_title, Object.assign({}, unit))},
        plugins: Object.assign(base.plugins, {tooltip: {callbacks: {label: function (c) {
          var p = c.raw; return (p.title || (spec.x_title + " " + p.x.toFixed(2) + ", " + spec.y_title + " " + p.y.toFixed(2)));
        }}}})})};
    }
    if (spec.type === "waterfall") {
      return {type: "bar", data: {labels: spec.labels, datasets: series.map(function (s) {
        return {label: s.label, data: s.data, backgroundColor: s.colors, borderSkipped: false};
      })}, options: Object.assign(base, {indexAxis: "y", scales: {
        x: axis(spec.x_title, {ticks: {color: MUTED}}),
        y: axis("", {ticks: {color: INK, autoSkip: false}, grid: {display: false}})}})};
    }
    return null;
  }

  function draw(canvas) {
    var source = document.getElementById(canvas.getAttribute("data-chart"));
    if (!source) { return; }
    if (typeof Chart === "undefined") {
      var note = document.createElement("p");
      note.className = "chart-missing";
      note.textContent = "The chart library is missing: run `make install` (it copies Chart.js into the static files).";
      canvas.parentNode.replaceWith(note);
      return;
    }
    var cfg = config(JSON.parse(source.textContent));
    if (cfg) { new Chart(canvas, cfg); }
  }

  function busyForms() {
    // Long queries: show that the page is working while the next one loads.
    document.querySelectorAll("form[data-busy]").forEach(function (form) {
      form.addEventListener("submit", function () { form.classList.add("is-busy"); });
    });
  }

  function start() {
    document.querySelectorAll("canvas[data-chart]").forEach(draw);
    busyForms();
  }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", start); } else { start(); }
})();
