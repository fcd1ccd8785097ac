// graphwarden dashboard: draws the charts (uPlot) from each `.chart` element's `data-series`
// ({"x": [unix seconds…], "series": [{"label", "values"}…]}). Everything else is plain HTML.
(function () {
  "use strict";
  var palette = ["#1d4ed8", "#b91c1c", "#15803d", "#b45309", "#7c3aed", "#0e7490", "#be185d", "#4d7c0f"];
  function draw(el) {
    var data;
    try { data = JSON.parse(el.getAttribute("data-series")); } catch (e) { return; }
    if (!data || !data.x || !data.series) { return; }
    if (data.series.length === 0) {
      el.textContent = "Nothing recorded in this window.";
      return;
    }
    var opts = {
      width: Math.max(280, el.clientWidth || 600),
      height: 220,
      series: [{}].concat(data.series.map(function (s, i) {
        return { label: s.label, stroke: palette[i % palette.length], width: 2 };
      })),
      axes: [{}, {}],
      scales: el.hasAttribute("data-max") ? { y: { range: [0, Number(el.getAttribute("data-max"))] } } : {},
    };
    var rows = [data.x].concat(data.series.map(function (s) { return s.values; }));
    if (typeof uPlot === "function") { new uPlot(opts, rows, el); }
  }
  document.addEventListener("DOMContentLoaded", function () {
    Array.prototype.forEach.call(document.querySelectorAll(".chart[data-series]"), draw);
  });
})();
