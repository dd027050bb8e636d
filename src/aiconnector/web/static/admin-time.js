// Show <time datetime="…UTC…"> in the viewer's timezone. The server renders UTC text as the
// fallback; relative times ("3 minutes ago", data-relative) keep the exact local time on hover.
(function () {
  "use strict";
  var exact = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
  var rel = window.Intl && Intl.RelativeTimeFormat ? new Intl.RelativeTimeFormat(undefined, { numeric: "auto" }) : null;
  var units = [["day", 86400], ["hour", 3600], ["minute", 60]];

  function relative(date) {
    var seconds = Math.round((date.getTime() - Date.now()) / 1000);
    if (!rel || Math.abs(seconds) < 45) return "just now";
    for (var i = 0; i < units.length; i++) {
      if (Math.abs(seconds) >= units[i][1]) return rel.format(Math.trunc(seconds / units[i][1]), units[i][0]);
    }
    return "just now";
  }

  function apply(root) {
    var nodes = (root || document).querySelectorAll("time[datetime]");
    for (var i = 0; i < nodes.length; i++) {
      var date = new Date(nodes[i].getAttribute("datetime"));
      if (isNaN(date.getTime())) continue;
      if (nodes[i].hasAttribute("data-relative")) {
        nodes[i].textContent = relative(date);
        nodes[i].title = exact.format(date);
      } else {
        nodes[i].textContent = exact.format(date);
        nodes[i].title = date.toISOString().replace(".000Z", "Z") + " (UTC)";
      }
    }
  }

  window.adminTime = { apply: apply };
  document.addEventListener("DOMContentLoaded", function () { apply(document); });
  setInterval(function () { apply(document); }, 30000);
})();
