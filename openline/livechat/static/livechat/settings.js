/* Live chat settings page: copy buttons, and "Closed" days switch their hours off. */
(function () {
  "use strict";

  function selectText(el) {
    var range = document.createRange();
    range.selectNodeContents(el);
    var sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
  }

  function say(status, text, failed) {
    if (!status) return;
    status.textContent = text;
    status.classList.toggle("lc-copy-failed", !!failed);
    clearTimeout(status._t);
    if (!failed) status._t = setTimeout(function () { status.textContent = ""; }, 4000);
  }

  document.querySelectorAll("[data-copy]").forEach(function (btn) {
    btn.addEventListener("click", function () {
      var source = document.getElementById(btn.getAttribute("data-copy"));
      var status = document.getElementById(btn.getAttribute("data-copy-status"));
      if (!source) return;
      var text = source.textContent;
      var fallback = function () {
        // No clipboard access (plain http, or refused): select it for Ctrl+C / ⌘C.
        selectText(source);
        say(status, "Selected: press Ctrl+C (⌘C on a Mac) to copy.", true);
      };
      if (!navigator.clipboard || !navigator.clipboard.writeText) { fallback(); return; }
      navigator.clipboard.writeText(text).then(function () { say(status, "Copied"); }, fallback);
    });
  });

  document.querySelectorAll(".lc-day").forEach(function (row) {
    var hours = row.querySelector("input[type=text]");
    var closed = row.querySelector("input[type=checkbox]");
    if (!hours || !closed) return;
    var sync = function () { hours.disabled = closed.checked; };
    closed.addEventListener("change", sync);
    sync();
  });
})();
