// Outbox page: the live-updates pause toggle and the uPlot chart of rates and publish latency.
(function () {
  "use strict";
  let livePaused = false;

  document.addEventListener("htmx:wsBeforeMessage", function (event) {
    if (livePaused) event.preventDefault();
    else {
      refreshChart();
      refreshRows();
    }
  });

  // The rows list follows the backlog: one re-fetch (with the page's filter) per live update, at most every second.
  let rowsTimer = null;
  let lastRows = 0;
  function refreshRows() {
    if (rowsTimer) return;
    const wait = Math.max(0, 1000 - (Date.now() - lastRows));
    rowsTimer = setTimeout(function () {
      rowsTimer = null;
      if (livePaused) return;
      lastRows = Date.now();
      document.body.dispatchEvent(new Event("outbox-refresh"));
    }, wait);
  }

  let plot = null;
  let lastFetch = 0;

  function refreshChart() {
    const el = document.getElementById("outbox-chart");
    if (!el || typeof uPlot === "undefined") return;
    const now = Date.now();
    if (now - lastFetch < 5000) return; // the chart's buckets are 10 s; more often adds nothing
    lastFetch = now;
    fetch(el.dataset.seriesUrl, { credentials: "same-origin" })
      .then((r) => r.json())
      .then((s) => draw(el, s))
      .catch(() => {});
  }

  function draw(el, s) {
    const data = [s.t, s.rate_in, s.rate_out, s.p50_ms, s.p95_ms, s.p99_ms];
    if (plot) {
      plot.setData(data);
      return;
    }
    plot = new uPlot(
      {
        width: Math.max(400, el.clientWidth || 900),
        height: 260,
        series: [
          {},
          { label: "in /s", stroke: "#2b6cb0", scale: "rate" },
          { label: "out /s", stroke: "#2f855a", scale: "rate" },
          { label: "p50 ms", stroke: "#b7791f", scale: "ms" },
          { label: "p95 ms", stroke: "#c05621", scale: "ms" },
          { label: "p99 ms", stroke: "#c53030", scale: "ms" },
        ],
        axes: [{}, { scale: "rate", label: "events/s" }, { scale: "ms", side: 1, label: "ms", grid: { show: false } }],
      },
      data,
      el,
    );
  }

  document.addEventListener("DOMContentLoaded", function () {
    const toggle = document.getElementById("outbox-live-pause");
    if (toggle) toggle.addEventListener("change", () => (livePaused = toggle.checked));
    refreshChart();
    setInterval(refreshChart, 10000);
  });
})();
