// Copy a new API token to the clipboard; without clipboard access, select it for Ctrl+C / ⌘C.
(function () {
  "use strict";
  document.querySelectorAll("[data-copy]").forEach(function (button) {
    var field = document.getElementById(button.getAttribute("data-copy"));
    var status = document.getElementById("token-copy-status");
    if (!field) { return; }
    function say(text) { if (status) { status.textContent = text; } }
    function fallback() {
      field.focus();
      field.select();
      say("Press Ctrl+C (⌘C on a Mac) to copy the selected token.");
    }
    button.addEventListener("click", function () {
      if (!navigator.clipboard || !navigator.clipboard.writeText) { fallback(); return; }
      navigator.clipboard.writeText(field.value).then(function () { say("Copied."); }, fallback);
    });
  });
})();
