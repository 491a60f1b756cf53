// Live preview of a consent text: the server's sanitiser renders it, so the preview is
// exactly what a client will see (CSP forbids inline scripts, hence this file).
(function () {
  "use strict";
  var form = document.querySelector("[data-preview-url]");
  if (!form) return;
  var text = form.querySelector("textarea[name=text]");
  var allowHtml = form.querySelector("input[name=allow_html]");
  var target = document.getElementById("consent-preview");
  var hash = document.getElementById("consent-preview-sha");
  var status = document.getElementById("consent-preview-status");
  var token = form.querySelector("input[name=csrfmiddlewaretoken]");
  if (!text || !target) return;
  var timer = null;
  var sequence = 0;

  function render() {
    var mine = ++sequence;
    var body = new URLSearchParams();
    body.set("text", text.value);
    if (allowHtml && (allowHtml.type === "hidden" || allowHtml.checked)) body.set("allow_html", "on");
    if (status) status.textContent = "Updating…";
    fetch(form.getAttribute("data-preview-url"), {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRFToken": token ? token.value : "", "Content-Type": "application/x-www-form-urlencoded" },
      body: body.toString()
    })
      .then(function (response) { return response.json().then(function (data) { return [response.ok, data]; }); })
      .then(function (result) {
        if (mine !== sequence) return;
        if (!result[0]) { if (status) status.textContent = result[1].error || "Preview failed."; return; }
        // The HTML comes from the server-side nh3 sanitiser: the same code that makes the version.
        target.innerHTML = result[1].html || "<p class=\"muted\">The text is empty.</p>";
        if (hash) hash.textContent = result[1].sha256;
        if (status) status.textContent = "Up to date";
        target.setAttribute("data-rendered", "1");
      })
      .catch(function () { if (status && mine === sequence) status.textContent = "Preview unavailable (offline?)"; });
  }

  function schedule() {
    clearTimeout(timer);
    timer = setTimeout(render, 250);
  }

  text.addEventListener("input", schedule);
  if (allowHtml) allowHtml.addEventListener("change", render);
  render();
})();
