// Rows still in flight refresh themselves: every 2 s the dashboard asks
// /ui/messages/status for their statuses and updates each badge in place.
// A message page reloads itself once its status changes. Relative times
// ("12 s ago") are recounted as they age. Without JavaScript the pages are
// the same, only still.
(function () {
  "use strict";
  var INTERVAL_MS = 2000;

  // As app/ui/render.py::ago says it.
  var UNITS = [["d", 86400], ["h", 3600], ["min", 60], ["s", 1]];

  function relative(iso) {
    var seconds = (Date.now() - Date.parse(iso)) / 1000;
    var future = seconds < 0;
    seconds = Math.abs(seconds);
    if (isNaN(seconds) || seconds < 5) { return "just now"; }
    for (var i = 0; i < UNITS.length; i++) {
      if (seconds >= UNITS[i][1]) {
        var amount = Math.floor(seconds / UNITS[i][1]) + " " + UNITS[i][0];
        return future ? "in " + amount : amount + " ago";
      }
    }
    return "just now";
  }

  function recount() {
    document.querySelectorAll("time[data-ago]").forEach(function (time) {
      time.textContent = relative(time.getAttribute("datetime"));
    });
  }

  function pending() {
    return Array.prototype.slice.call(document.querySelectorAll("[data-in-flight]"));
  }

  function update(element, found) {
    var badge = element.querySelector(".badge");
    var changed = badge && badge.textContent !== found.status;
    if (badge) {
      badge.textContent = found.status;
      badge.className = "badge s-" + found.status;
    }
    var updated = element.querySelector("[data-updated]");
    if (updated) {
      updated.setAttribute("datetime", found.updated_at);
      updated.setAttribute("title", found.updated_at);
      updated.textContent = relative(found.updated_at);
    }
    var attempts = element.querySelector("[data-attempts]");
    if (attempts) { attempts.textContent = String(found.attempt_count); }
    if (found.final) { element.removeAttribute("data-in-flight"); }
    if (changed && element.hasAttribute("data-reload")) { window.location.reload(); }
  }

  function poll() {
    var elements = pending();
    if (elements.length === 0) { return; }
    var query = elements.map(function (element) {
      return "id=" + encodeURIComponent(element.getAttribute("data-message-id"));
    }).join("&");
    fetch("/ui/messages/status?" + query, {
      credentials: "same-origin", headers: { "Accept": "application/json" }
    }).then(function (response) {
      return response.ok ? response.json() : { data: [] };
    }).then(function (body) {
      var byId = {};
      body.data.forEach(function (found) { byId[found.id] = found; });
      elements.forEach(function (element) {
        var found = byId[element.getAttribute("data-message-id")];
        if (found) { update(element, found); }
      });
    }).catch(function () { /* the next round tries again */ })
      .then(function () { window.setTimeout(poll, INTERVAL_MS); });
  }

  window.setTimeout(poll, INTERVAL_MS);
  window.setInterval(recount, INTERVAL_MS);
})();
