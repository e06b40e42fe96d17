// Consumers pages: pause toggle for the live list, and uPlot history charts on a target's page.
(function () {
  "use strict";

  function setupPause() {
    var button = document.getElementById("pause-live");
    if (!button) return;
    var paused = false;
    button.addEventListener("click", function () {
      paused = !paused;
      button.setAttribute("aria-pressed", String(paused));
      button.textContent = paused ? "Resume updates" : "Pause updates";
      var indicator = document.getElementById("live-indicator");
      if (indicator) {
        indicator.classList.toggle("paused", paused);
        indicator.textContent = paused ? "paused" : "live";
      }
    });
    // htmx's ws extension lets a listener cancel a message before it is swapped in.
    document.body.addEventListener("htmx:wsBeforeMessage", function (event) {
      if (paused) event.preventDefault();
    });
  }

  function setupChart() {
    var el = document.getElementById("chart");
    if (!el || typeof uPlot === "undefined") return;
    var plot = null;
    function draw(range) {
      delete el.dataset.range;  // set again once this range is drawn
      fetch(el.dataset.history + "?range=" + range, { credentials: "same-origin" })
        .then(function (r) { return r.json(); })
        .then(function (h) {
          // The server names the lines this target draws (lag, depth, outbox backlog, dead letters...).
          var colors = ["#2457c5", "#b7791f", "#6b7687", "#9b2c2c"];
          var series = [{}], data = [h.time], hasSeconds = false;
          (h.series || []).forEach(function (s, i) {
            series.push({ label: s.label, stroke: colors[i % colors.length], scale: s.seconds ? "s" : "n" });
            data.push(h[s.key]);
            hasSeconds = hasSeconds || s.seconds;
          });
          var axes = [{}, { scale: "n" }];
          if (hasSeconds) axes.push({ scale: "s", side: 1, size: 70 });
          var opts = {
            width: Math.min(el.clientWidth || 900, 1100),
            height: 260,
            series: series,
            axes: axes,
          };
          if (plot) plot.destroy();
          plot = new uPlot(opts, data, el);
          el.dataset.range = range;  // tests and users can tell which range is drawn
        });
    }
    document.querySelectorAll("#chart-ranges a[data-range]").forEach(function (a) {
      a.addEventListener("click", function (event) {
        event.preventDefault();
        draw(a.dataset.range);
      });
    });
    draw("1h");
  }

  document.addEventListener("DOMContentLoaded", function () {
    setupPause();
    setupChart();
  });
})();
