// Live connections list: every 3 s ask the feed (data-feed) whether the first page changed
// (its signature); when it did, fetch this page again and swap in the new rows. Progressive:
// without this script the list is complete, just not live. Not while the user is working
// inside the table (focus in it), so keyboard users never lose their place.
(function () {
  "use strict";
  var INTERVAL = 3000;

  function current() {
    return document.getElementById("connections") || document.getElementById("connections-empty");
  }

  function swap(html) {
    var fresh = new DOMParser().parseFromString(html, "text/html");
    var next = fresh.getElementById("connections") || fresh.getElementById("connections-empty");
    var old = current();
    if (!next || !old) return 0;
    var known = {};
    old.querySelectorAll("tr[data-id]").forEach(function (row) { known[row.getAttribute("data-id")] = true; });
    var added = 0;
    next.querySelectorAll("tr[data-id]").forEach(function (row) {
      if (!known[row.getAttribute("data-id")]) added++;
    });
    var oldBox = old.closest(".table-wrap") || old;
    var newBox = next.closest(".table-wrap") || next;
    oldBox.replaceWith(document.importNode(newBox, true));
    var pager = fresh.querySelector("nav.pager");
    var oldPager = document.querySelector("nav.pager");
    if (oldPager) oldPager.remove();
    if (pager) (current().closest(".table-wrap") || current()).after(document.importNode(pager, true));
    if (window.adminTime) window.adminTime.apply(current());
    return added;
  }

  function poll() {
    var box = current();
    if (!box || !box.dataset.feed || document.hidden) return;
    if (box.contains(document.activeElement)) return;
    fetch(box.dataset.feed, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) {
        if (!data || data.signature === box.dataset.signature) return null;
        return fetch(window.location.href, { credentials: "same-origin" }).then(function (r) { return r.text(); });
      })
      .then(function (html) {
        if (!html) return;
        var added = swap(html);
        var status = document.getElementById("live-status");
        if (status) status.textContent = added ? added + (added === 1 ? " new connection" : " new connections") : "Updated just now";
      })
      .catch(function () { /* offline or signed out: try again next time */ });
  }

  setInterval(poll, INTERVAL);
})();
