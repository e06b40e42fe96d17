// Live lists: a row the server marked `data-live-match` (it matches the socket's filter) that htmx could not swap in
// by id (this page does not show it yet) goes on top of the page's `data-live-list` body, as the newest; the list's
// `data-live-empty` row, if any, goes. One handler for every live list (sagas, operations).
(function () {
  "use strict";
  document.addEventListener("htmx:oobErrorNoTarget", function (e) {
    var row = e.detail.content, rows = document.querySelector("[data-live-list]");
    if (!row || !row.hasAttribute || !row.hasAttribute("data-live-match") || !rows) return;
    if (document.getElementById(row.id)) return;
    var empty = rows.querySelector("[data-live-empty]");
    if (empty) empty.remove();
    row.removeAttribute("data-live-match");
    rows.insertBefore(row, rows.firstChild);
    htmx.process(row);
  });
})();
