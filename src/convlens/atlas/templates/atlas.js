/* convlens atlas: lazy sprite sheets and unit sorting. No network, no dependencies. */
(function () {
  "use strict";

  // --- sprites: each sheet is fetched once, when its first tile nears the viewport ---------
  var sheets = {}; // src -> "loading" | "loaded" | "error"
  window.atlasSprites = sheets;

  function tilesOf(src) {
    return document.querySelectorAll('.tile[data-src="' + src.replace(/"/g, '\\"') + '"]');
  }

  function loadSheet(src) {
    if (sheets[src]) return;
    sheets[src] = "loading";
    var img = new Image();
    img.onload = function () {
      sheets[src] = "loaded";
      tilesOf(src).forEach(function (t) {
        t.style.backgroundImage = 'url("' + src + '")';
        t.classList.add("loaded");
      });
    };
    img.onerror = function () {
      sheets[src] = "error";
      console.error("atlas: could not load sprite sheet " + src);
    };
    img.src = src;
  }

  // Load every sheet now (used by tests and by printing).
  window.atlasLoadAll = function () {
    document.querySelectorAll(".tile[data-src]").forEach(function (t) {
      loadSheet(t.getAttribute("data-src"));
    });
  };

  function watch() {
    var tiles = document.querySelectorAll(".tile[data-src]");
    if (!("IntersectionObserver" in window)) {
      window.atlasLoadAll();
      return;
    }
    var io = new IntersectionObserver(
      function (entries) {
        entries.forEach(function (e) {
          if (e.isIntersecting) {
            loadSheet(e.target.getAttribute("data-src"));
            io.unobserve(e.target);
          }
        });
      },
      { rootMargin: "800px 0px" }
    );
    tiles.forEach(function (t) {
      var src = t.getAttribute("data-src");
      if (sheets[src] === "loaded") {
        t.style.backgroundImage = 'url("' + src + '")';
        t.classList.add("loaded");
      } else {
        io.observe(t);
      }
    });
  }

  // --- sorting the units of a layer page ------------------------------------------------
  function sortUnits(key) {
    var list = document.getElementById("units");
    if (!list) return;
    var rows = Array.prototype.slice.call(list.querySelectorAll(".unit-row"));
    rows.sort(function (a, b) {
      if (key === "index") return +a.dataset.index - +b.dataset.index;
      var va = parseFloat(a.dataset[key]);
      var vb = parseFloat(b.dataset[key]);
      if (isNaN(va)) va = -Infinity;
      if (isNaN(vb)) vb = -Infinity;
      return vb - va || +a.dataset.index - +b.dataset.index;
    });
    rows.forEach(function (r) { list.appendChild(r); });
    document.querySelectorAll("[data-sort]").forEach(function (b) {
      b.setAttribute("aria-pressed", b.dataset.sort === key ? "true" : "false");
    });
    try { history.replaceState(null, "", "#sort=" + key); } catch (err) { /* file:// quirks */ }
  }

  function toggleDead(hide) {
    document.querySelectorAll(".unit-row.is-dead").forEach(function (r) {
      r.style.display = hide ? "none" : "";
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-sort]").forEach(function (b) {
      b.addEventListener("click", function () { sortUnits(b.dataset.sort); });
    });
    var dead = document.getElementById("hide-dead");
    if (dead) dead.addEventListener("change", function () { toggleDead(dead.checked); });
    var m = /#sort=(\w+)/.exec(location.hash);
    if (m) sortUnits(m[1]);
    watch();
  });
  window.atlasSortUnits = sortUnits;
})();
