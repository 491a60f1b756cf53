{% comment %}Openline live chat loader: a launcher and the chat iframe. It keeps the client's handle
in this site's storage (browsers block the iframe's own) and gives it only to the chat iframe.
Allowed websites may be wildcards like https://*.example.com: they match any subdomain, as they
do in the frame's Content-Security-Policy frame-ancestors. Template comments are not served, so
they do not count against the loader's size.{% endcomment %}(function () {
  var O = "{{ origin|escapejs }}", C = "{{ code|escapejs }}", w = window, d = document;
  var A = {{ allowed_origins_json|default:"null"|safe }}, L = "{{ label|escapejs }}";
  var K = "{{ color|default:'#2156d9'|escapejs }}", P = "{{ position|escapejs }}" === "left" ? "left" : "right";
  if (w.__openline && w.__openline[C]) return;
  (w.__openline = w.__openline || {})[C] = 1;
  function ok(o) {
    var i = o.indexOf("*"), h = location.origin, a = o.slice(0, i), b = o.slice(i + 1);
    return o === h || i > 0 && h.indexOf(a) === 0 && h.length > o.length && h.slice(-b.length) === b && !/[:/]/.test(h.slice(a.length, -b.length));
  }
  if (A && !A.some(ok)) {
    if (w.console) console.warn("Openline: the live chat" + (L ? " \u201c" + L + "\u201d" : "") + " is not allowed on " + location.origin +
      ". An administrator can add it to \u201cAllowed websites\u201d on the channel's Live chat page in Openline.");
    return;
  }
  if (!/^#[0-9a-f]{6}$/i.test(K)) K = "#2156d9";
  var n = parseInt(K.slice(1), 16), ink = [n >> 16, n >> 8 & 255, n & 255].reduce(function (s, v, i) {
    v /= 255; return s + [0.2126, 0.7152, 0.0722][i] * (v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4));
  }, 0) > 0.179 ? "#111" : "#fff"; // the launcher icon: dark or white, whichever reads better
  var de = /^de/i.test(navigator.language || "");
  var label = de ? "Chatten Sie mit uns" : "Chat with us", KEY = "openline:" + C;
  var open = false, frame, btn, badge;
  function css(el, s) { for (var k in s) el.style[k] = s[k]; }
  function post(msg) { if (frame && frame.contentWindow) frame.contentWindow.postMessage(msg, O); }
  function handle(v) {
    try {
      if (v === undefined) return localStorage.getItem(KEY);
      if (v) localStorage.setItem(KEY, v); else localStorage.removeItem(KEY);
    } catch (e) { return null; }
  }
  function place() {
    var small = Math.min(w.innerWidth, screen.width || 1e4) < 480, s = { left: "", right: "" };
    // Phones: full screen, the chat's close button replaces the launcher.
    btn.style.display = small ? "none" : "grid";
    s[P] = small ? "0" : "20px";
    css(frame, s);
    css(frame, small ? { bottom: "0", width: "100%", height: "100%", borderRadius: "0" }
      : { bottom: "92px", width: "370px", height: "min(580px, calc(100% - 112px))", borderRadius: "14px" });
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
    btn.title = L ? label + " \u2013 " + L : label;
    btn.innerHTML = '<svg width="28" height="28" viewBox="0 0 24 24" aria-hidden="true"><path fill="' + ink + '" d="M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H8l-4 4V6a2 2 0 0 1 2-2z"/></svg>';
    css(btn, { position: "fixed", bottom: "20px", width: "60px", height: "60px", borderRadius: "50%",
      border: "0", background: K, cursor: "pointer", zIndex: "2147483647", display: "grid", placeItems: "center",
      boxShadow: "0 6px 20px rgba(16,24,40,.3)", padding: "0" });
    btn.style[P] = "20px";
    badge = d.createElement("span");
    css(badge, { position: "absolute", top: "-2px", right: "-2px", minWidth: "20px", height: "20px", borderRadius: "10px",
      background: "#d92d20", color: "#fff", font: "700 12px/20px system-ui,sans-serif", display: "none", padding: "0 5px" });
    btn.appendChild(badge);
    btn.onclick = function () { toggle(); };
    d.body.appendChild(frame);
    d.body.appendChild(btn);
    w.addEventListener("resize", function () { if (open) place(); });
    w.addEventListener("message", function (e) {
      var m = e.data;
      if (e.origin !== O || e.source !== frame.contentWindow || !m) return;
      if (m.openline === "close") toggle(false);
      else if (m.openline === "unread" && !open) {
        badge.textContent = String(m.count);
        badge.style.display = m.count > 0 ? "block" : "none";
      } else if (m.openline === "ready") post({ openline: "hello", url: location.href, handle: handle() });
      else if (m.openline === "handle" && (m.handle === null || typeof m.handle === "string" && m.handle.length < 500)) handle(m.handle);
    });
  }
  if (d.body) init(); else d.addEventListener("DOMContentLoaded", init);
})();
