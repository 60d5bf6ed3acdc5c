// Vigie's only script (served by Vigie; pages work without it): reloads the page every
// `data-refresh` seconds unless the reader is typing in a form, and applies the time-range
// picker as soon as a range is chosen.
"use strict";
(function () {
  var seconds = parseInt(document.body.getAttribute("data-refresh") || "0", 10);
  var editing = false;
  document.addEventListener("input", function () { editing = true; });
  if (seconds > 0) {
    setInterval(function () {
      var active = document.activeElement;
      var typing = active && /^(INPUT|TEXTAREA|SELECT)$/.test(active.tagName);
      if (!editing && !typing && !document.hidden) { window.location.reload(); }
    }, seconds * 1000);
  }
  var picker = document.querySelector("form.picker select[name=periode]");
  if (picker && picker.form && picker.form.getAttribute("method") === "get") {
    picker.addEventListener("change", function () { picker.form.submit(); });
  }
})();
