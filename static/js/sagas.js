// The sagas list (templates/sagas/list.html): pause / resume live updates, and ticks that survive a live row swap.
// A static file, not an inline script: the Content-Security-Policy allows scripts from this site's static files only.
// Live: new sagas matching this filter arrive at the top, changed ones swap in place. Pause holds them: arriving
// fragments are not applied, and resuming (or "show" on the new-sagas notice) reloads the rows once, so nothing
// that arrived meanwhile is missed. The socket stays open throughout.
(function () {
  "use strict";
  var toggle = document.getElementById("live-toggle");
  if (!toggle) return;
  var paused = false, held = false, state = document.getElementById("live-state");
  function reloadRows() {
    held = false;
    document.getElementById("saga-new-notice").innerHTML = "";
    htmx.ajax("GET", window.location.href, {target: "#saga-rows", swap: "innerHTML"});
  }
  toggle.addEventListener("click", function () {
    paused = !paused;
    toggle.textContent = paused ? "Resume live updates" : "Pause live updates";
    toggle.setAttribute("aria-pressed", String(paused));
    state.classList.toggle("paused", paused);
    state.textContent = paused ? "paused" : "live";
    if (!paused && held) reloadRows();
  });
  document.body.addEventListener("htmx:wsBeforeMessage", function (e) {
    if (paused) { held = true; e.preventDefault(); }
  });
  document.body.addEventListener("click", function (e) {
    if (e.target.closest("[data-testid=show-new]")) { e.preventDefault(); reloadRows(); }
  });
  // Ticked sagas: a live update replaces a whole row, so carry its tick over to the new one; otherwise a saga
  // the operator ticked would silently drop out of the selection when it changes.
  function ticks() { return document.querySelectorAll("#saga-rows input[name=saga_ids]"); }
  function countTicked() {
    var count = document.getElementById("selected-count");
    if (count) count.textContent = document.querySelectorAll("#saga-rows input[name=saga_ids]:checked").length;
  }
  document.body.addEventListener("htmx:oobBeforeSwap", function (e) {
    var old = e.detail.target.querySelector && e.detail.target.querySelector("input[name=saga_ids]");
    var box = old && old.checked && e.detail.fragment.querySelector("input[name=saga_ids]");
    if (box) box.checked = true;
  });
  document.body.addEventListener("change", function (e) {
    if (e.target.id === "select-all") ticks().forEach(function (box) { box.checked = e.target.checked; });
    if (e.target.id === "select-all" || e.target.name === "saga_ids") countTicked();
  });
  document.body.addEventListener("htmx:afterSettle", countTicked);
  // A changed saga that now matches this page's filter but is not on it goes on top: static/js/live.js (the
  // server marks only rows that match this socket's filter, on the first page).
})();
