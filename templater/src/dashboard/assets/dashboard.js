// swarmgate edge dashboard: keeps the page live without reloading it. The server renders and
// escapes everything (the same HTML the page was served with); this only fetches the fresh body
// every second and swaps it in. Without JavaScript the page refreshes itself (<noscript>).
(function () {
  "use strict";
  var live = document.getElementById("live");
  var last = "";
  function poll() {
    fetch("/fragment", { cache: "no-store" })
      .then(function (r) {
        if (!r.ok) throw new Error(r.status);
        return r.text();
      })
      .then(function (html) {
        if (html !== last) {
          live.innerHTML = html;
          last = html;
        }
        document.body.classList.remove("stale");
      })
      .catch(function () {
        document.body.classList.add("stale");
      })
      .then(function () {
        setTimeout(poll, 1000);
      });
  }
  setTimeout(poll, 1000);
})();
