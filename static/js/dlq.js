// Dead-letter pages: the live-updates pause toggle. While paused, arriving fragments are dropped (the page keeps
// what the operator is reading); un-pausing reloads the list once so nothing that arrived meanwhile is missed.
(function () {
  "use strict";
  let paused = false;
  let missed = false;

  document.addEventListener("htmx:wsBeforeMessage", function (event) {
    if (paused) {
      missed = true;
      event.preventDefault();
    }
  });

  document.addEventListener("change", function (event) {
    if (event.target.id !== "dl-pause") return;
    paused = event.target.checked;
    const live = document.getElementById("dl-live");
    if (live) live.classList.toggle("paused", paused);
    const note = document.getElementById("dl-paused-note");
    if (note) note.hidden = !paused;
    if (!paused && missed) {
      missed = false;
      const rows = document.getElementById("dl-rows") || document.getElementById("group-rows");
      if (rows) htmx.ajax("GET", window.location.href, { target: rows, swap: "innerHTML" });
    }
  });
})();
