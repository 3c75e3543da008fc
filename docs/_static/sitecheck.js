/* Self-check of a rendered page, used by docs/check_site.py in headless Chromium.
 * It does nothing unless the page is opened with "?sitecheck" in its URL. Then,
 * once the page and MathJax are done, it writes a JSON report into
 * <pre id="sitecheck-result">: images that did not load, math that MathJax did
 * not render (or rendered as an error), and in-page links to missing anchors. */
(function () {
  if (!/[?&]sitecheck/.test(window.location.search)) { return; }
  function report() {
    var result = {images: 0, brokenImages: [], math: 0, unrenderedMath: [], mathErrors: 0,
                  brokenAnchors: []};
    document.querySelectorAll("img").forEach(function (img) {
      result.images += 1;
      if (!img.complete || img.naturalWidth === 0) { result.brokenImages.push(img.getAttribute("src")); }
    });
    document.querySelectorAll(".math").forEach(function (el) {
      result.math += 1;
      if (!el.querySelector("mjx-container") && el.tagName !== "MJX-CONTAINER") {
        result.unrenderedMath.push(el.textContent.slice(0, 60));
      }
    });
    result.mathErrors = document.querySelectorAll("mjx-merror, [data-mjx-error]").length;
    document.querySelectorAll("a[href^='#']").forEach(function (a) {
      var id = decodeURIComponent(a.getAttribute("href").slice(1));
      if (id && !document.getElementById(id)) { result.brokenAnchors.push(id); }
    });
    var pre = document.createElement("pre");
    pre.id = "sitecheck-result";
    pre.textContent = JSON.stringify(result);
    document.body.appendChild(pre);
  }
  window.addEventListener("load", function () {
    var wait = (window.MathJax && MathJax.startup && MathJax.startup.promise)
      ? MathJax.startup.promise : Promise.resolve();
    wait.then(report, report);
  });
})();
