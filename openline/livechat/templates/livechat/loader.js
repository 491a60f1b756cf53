/* Openline live chat loader: a launcher button and the chat in an iframe on Openline's origin. */
(function () {
  var O = "{{ origin|escapejs }}", C = "{{ code|escapejs }}", w = window, d = document;
  if (w.__openline && w.__openline[C]) return;
  (w.__openline = w.__openline || {})[C] = 1;
  var de = /^de/i.test(navigator.language || "");
  var label = de ? "Chatten Sie mit uns" : "Chat with us";
  var open = false, frame, btn, badge;
  function css(el, s) { for (var k in s) el.style[k] = s[k]; }
  function post(msg) { if (frame && frame.contentWindow) frame.contentWindow.postMessage(msg, O); }
  function place() {
    var small = Math.min(w.innerWidth, screen.width || 1e4) < 480;
    // Full screen on phones: the chat's own close button replaces the launcher.
    btn.style.display = small ? "none" : "grid";
    css(frame, small ? { right: "0", bottom: "0", width: "100%", height: "100%", borderRadius: "0" }
      : { right: "20px", bottom: "92px", width: "370px", height: "min(580px, calc(100% - 112px))", borderRadius: "14px" });
  }
  function toggle(show) {
    open = show === undefined ? !open : show;
    frame.style.display = open ? "block" : "none";
    btn.setAttribute("aria-expanded", open ? "true" : "false");
    if (open) { place(); post({ openline: "open", url: location.href }); badge.style.display = "none"; }
    else { btn.style.display = "grid"; btn.focus(); }
  }
  function init() {
    frame = d.createElement("iframe");
    frame.src = O + "/widget/" + encodeURIComponent(C) + "/frame#" + encodeURIComponent(location.href);
    frame.title = label;
    frame.setAttribute("allow", "clipboard-write");
    css(frame, { position: "fixed", display: "none", border: "0", zIndex: "2147483646", background: "#fff",
      boxShadow: "0 12px 40px rgba(16,24,40,.25)", colorScheme: "normal" });
    btn = d.createElement("button");
    btn.type = "button";
    btn.setAttribute("aria-label", label);
    btn.setAttribute("aria-expanded", "false");
    btn.title = label;
    btn.innerHTML = '<svg width="28" height="28" viewBox="0 0 24 24" aria-hidden="true"><path fill="#fff" d="M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H8l-4 4V6a2 2 0 0 1 2-2z"/></svg>';
    css(btn, { position: "fixed", right: "20px", bottom: "20px", width: "60px", height: "60px", borderRadius: "50%",
      border: "0", background: "#2156d9", cursor: "pointer", zIndex: "2147483647", display: "grid", placeItems: "center",
      boxShadow: "0 6px 20px rgba(33,86,217,.45)", padding: "0" });
    badge = d.createElement("span");
    css(badge, { position: "absolute", top: "-2px", right: "-2px", minWidth: "20px", height: "20px", borderRadius: "10px",
      background: "#d92d20", color: "#fff", font: "700 12px/20px system-ui,sans-serif", display: "none", padding: "0 5px" });
    btn.appendChild(badge);
    btn.onclick = function () { toggle(); };
    d.body.appendChild(frame);
    d.body.appendChild(btn);
    w.addEventListener("resize", function () { if (open) place(); });
    w.addEventListener("message", function (e) {
      if (e.origin !== O || e.source !== frame.contentWindow || !e.data) return;
      if (e.data.openline === "close") toggle(false);
      else if (e.data.openline === "unread" && !open) {
        badge.textContent = String(e.data.count);
        badge.style.display = e.data.count > 0 ? "block" : "none";
      } else if (e.data.openline === "ready") post({ openline: "page", url: location.href });
    });
  }
  if (d.body) init(); else d.addEventListener("DOMContentLoaded", init);
})();
