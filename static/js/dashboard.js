// Dashboard: one uPlot chart per series group of GET /api/v1/dashboard/timeline, redrawn live (the dashboard's
// WebSocket says something changed) at most every 10 s, and every 30 s regardless. Links live in the page itself.
(function () {
  "use strict";
  const COLOURS = ["#2b6cb0", "#c53030", "#2f855a", "#b7791f", "#6b46c1", "#c05621", "#2c7a7b", "#97266d"];
  const plots = {};
  let last = 0;
  let timer = null;

  function refresh() {
    const root = document.getElementById("timeline");
    if (!root || typeof uPlot === "undefined") return;
    last = Date.now();
    fetch(root.dataset.timelineUrl, { credentials: "same-origin" })
      .then((r) => r.json())
      .then(draw)
      .catch(() => {});
  }

  function soon() {
    if (timer) return;
    timer = setTimeout(function () {
      timer = null;
      refresh();
    }, Math.max(0, 10000 - (Date.now() - last)));
  }

  function draw(data) {
    data.charts.forEach(function (chart) {
      const el = document.getElementById("plot-" + chart.name);
      if (!el) return;
      const values = [data.t].concat(chart.series.map((s) => s.values));
      const key = chart.name + ":" + chart.series.map((s) => s.label).join("|");
      if (plots[chart.name] && plots[chart.name].key === key) {
        plots[chart.name].plot.setData(values);
        return;
      }
      if (plots[chart.name]) plots[chart.name].plot.destroy();
      const second = chart.axis2 || [];
      const bars = chart.style === "bars" && uPlot.paths && uPlot.paths.bars;
      const series = [{}].concat(
        chart.series.map((s, i) => ({
          label: s.label,
          stroke: COLOURS[i % COLOURS.length],
          fill: bars ? COLOURS[i % COLOURS.length] + "99" : undefined,
          paths: bars ? uPlot.paths.bars({ size: [0.8, 24], align: i % 2 ? 1 : -1 }) : undefined,
          points: { show: !bars },
          width: bars ? 1 : 2,
          scale: second.indexOf(s.label) >= 0 ? "y2" : "y",
          spanGaps: false,
        })),
      );
      const axes = [{}, { scale: "y" }];
      if (second.length) axes.push({ scale: "y2", side: 1, grid: { show: false } });
      const plot = new uPlot(
        {
          width: Math.max(300, el.clientWidth || 560),
          height: 200,
          series: series,
          axes: axes,
          scales: { y: { range: (u, min, max) => [0, Math.max(1, max)] } },
          legend: { live: false },
        },
        values,
        el,
      );
      el.dataset.points = String(data.t.length);
      plots[chart.name] = { key: key, plot: plot };
    });
    const root = document.getElementById("timeline");
    if (root) root.dataset.drawn = String(Date.now());
  }

  document.addEventListener("htmx:wsAfterMessage", soon);
  document.addEventListener("DOMContentLoaded", function () {
    refresh();
    setInterval(refresh, 30000);
  });
})();
