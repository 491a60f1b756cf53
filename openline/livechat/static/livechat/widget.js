/* Openline live chat widget: runs inside the iframe on Openline's origin, no framework.
   Client text and every configured string are only ever inserted with textContent; the consent
   text is HTML sanitised by the server (nh3) and is the only innerHTML. */
(function () {
  "use strict";
  var cfg = JSON.parse(document.getElementById("ol-config").textContent);
  var t = cfg.t, KEY = "openline:" + cfg.code, look = cfg.appearance || {}, preview = !!cfg.preview;
  function $(id) { return document.getElementById(id); }
  var log = $("ol-log"), scroller = $("ol-scroll"), gate = $("ol-gate"), gateText = $("ol-gate-text"),
    input = $("ol-text"), form = $("ol-compose"), statusEl = $("ol-status"), typingEl = $("ol-typing"),
    menuBtn = $("ol-menu-btn"), menu = $("ol-menu"), more = $("ol-more"), confirmBox = $("ol-confirm");
  var embedded = window.parent !== window;
  var S = {
    token: null, conv: null, offer: cfg.consent, consentRequired: !!cfg.consent, hasConsent: false, changed: false,
    lastId: 0, lastOp: null, acked: { delivered: 0, read: 0 }, pending: {}, waiting: null, booted: false, deferred: false,
    ws: null, ready: false, retries: 0, retryTimer: 0, stableTimer: 0, open: !embedded || preview, pageUrl: "", unread: 0, sentTyping: 0, typingTimer: 0,
    parentOrigin: null, withdrawing: false
  };
  var nodes = {};

  // ----- the client's handle: the frame's own storage, else the host page's (via the loader) --
  // Browsers block storage in a third-party iframe, so the loader keeps a copy in the website's
  // own localStorage and hands it over by postMessage; the frame waits for it before it decides
  // that this is a new client, so nobody is asked for consent twice.
  function ownToken() { try { return (JSON.parse(localStorage.getItem(KEY)) || {}).token || null; } catch (e) { return null; } }
  function save() {
    if (preview) return;
    try { if (S.token) localStorage.setItem(KEY, JSON.stringify({ token: S.token })); else localStorage.removeItem(KEY); } catch (e) { /* blocked */ }
    if (S.parentOrigin) window.parent.postMessage({ openline: "handle", handle: S.token }, S.parentOrigin);
  }
  function setPage(url) { if (typeof url === "string" && /^https?:\/\//i.test(url)) S.pageUrl = url.slice(0, 2000); }
  try { setPage(decodeURIComponent(location.hash.slice(1))); } catch (e) { /* no page URL */ }
  if (!embedded) setPage(location.href);

  // ----- appearance: the channel's colour with readable text, its greeting ------------------
  function luminance(hex) {
    var n = parseInt(hex.slice(1), 16);
    return [n >> 16, n >> 8 & 255, n & 255].map(function (v) {
      v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
    }).reduce(function (sum, v, i) { return sum + v * [0.2126, 0.7152, 0.0722][i]; }, 0);
  }
  if (/^#[0-9a-f]{6}$/i.test(look.color || "")) {
    var root = document.documentElement.style;
    root.setProperty("--brand", look.color);
    // White or near-black text, whichever contrasts more with the colour.
    root.setProperty("--on-brand", luminance(look.color) > 0.179 ? "#111" : "#fff");
  }

  function newId() {
    var a = new Uint8Array(12); crypto.getRandomValues(a);
    return Array.prototype.map.call(a, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  }
  function stick() { scroller.scrollTop = scroller.scrollHeight; }
  function el(tag, cls, text) { var n = document.createElement(tag); if (cls) n.className = cls; if (text != null) n.textContent = text; return n; }
  function note(text) { var li = el("li", "ol-note", text); log.appendChild(li); stick(); return li; }
  function status(text) { statusEl.textContent = text || ""; statusEl.hidden = !text; }
  function convOpen() { return S.conv && S.conv.status !== "closed"; }

  function initials(name) {
    var w = String(name || "").trim().split(/\s+/).filter(Boolean);
    return ((w[0] || "?").charAt(0) + (w.length > 1 ? w[w.length - 1].charAt(0) : "")).toUpperCase();
  }
  function avatar(name, url) {
    if (typeof url === "string" && /^(https?:\/\/|\/[^/])/i.test(url)) {
      var img = el("img", "ol-av"); img.src = url; img.alt = ""; img.width = img.height = 24;
      img.onerror = function () { img.replaceWith(avatar(name, "")); };
      return img;
    }
    var span = el("span", "ol-av", initials(name)); span.setAttribute("aria-hidden", "true");
    return span;
  }
  function bubble(mine, text, who, pic) {
    var li = el("li", "ol-msg " + (mine ? "ol-me" : "ol-op"));
    if (who) {
      var head = el("span", "ol-who"); head.appendChild(avatar(who, pic)); head.appendChild(el("span", "ol-name", who));
      li.appendChild(head);
      // Consecutive lines of one operator show the name and picture once.
      var prev = log.lastElementChild;
      if (prev && prev.dataset.who === who) li.classList.add("ol-cont");
      li.dataset.who = who;
    }
    li.appendChild(el("span", "ol-bubble", text));
    li.appendChild(el("span", "ol-meta"));
    return li;
  }
  function mark(li, level) {
    var names = ["", t.sent, t.delivered, t.read];
    if (level > (+li.dataset.mark || 0)) { li.dataset.mark = level; li.lastChild.textContent = names[level]; }
  }
  // Returns whether the message is new here (a message can come twice: in "ready" and as the
  // event that was queued while "ready" was read).
  function render(m) {
    var li = nodes[m.id], fresh = !li;
    if (!li) {
      var p = m.client_id && S.pending[m.client_id];
      if (p) { li = p.el; delete S.pending[m.client_id]; li.classList.remove("ol-pending"); }
      else {
        var op = m.sender === "operator";
        li = bubble(m.sender === "visitor", m.text, op ? (m.author || t.operator) : "", op ? m.avatar : "");
        log.appendChild(li);
      }
      li.dataset.id = m.id; nodes[m.id] = li;
    }
    if (m.sender === "visitor") mark(li, m.read_at ? 3 : m.delivered_at ? 2 : 1);
    if (m.id > S.lastId) S.lastId = m.id;
    if (m.sender === "operator" && (!S.lastOp || m.id > S.lastOp.id)) S.lastOp = { id: m.id, conv: m.conversation };
    stick();
    return fresh;
  }

  // ----- working hours: outside them the client can still write ----------------------------
  function showHours(h) {
    var box = $("ol-hours");
    if (!h || !h.enabled || h.open) { box.hidden = true; return; }
    var text = (h.offline_message || "").trim() || t.closed_now, when = h.next_open && new Date(h.next_open);
    if (when && !isNaN(when)) {
      try {
        text += " " + t.back_at.replace("%(time)s", new Intl.DateTimeFormat(cfg.language, { weekday: "long", hour: "numeric", minute: "2-digit" }).format(when));
      } catch (e) { /* no Intl: the message alone */ }
    }
    box.textContent = text; box.hidden = false;
  }
  showHours(cfg.hours);

  // ----- the consent gate: the typed message waits here, in the browser --------------------
  function moreCue() {
    var left = gateText.scrollHeight - gateText.scrollTop - gateText.clientHeight > 4;
    gateText.classList.toggle("ol-fade", left); more.hidden = !left;
  }
  gateText.onscroll = moreCue;
  more.onclick = function () { gateText.scrollBy({ top: gateText.clientHeight * 0.8, behavior: "smooth" }); gateText.focus(); };
  function showGate(text) {
    if (!S.waiting && text != null) {
      var li = bubble(true, text, ""); li.classList.add("ol-waiting"); li.lastChild.textContent = t.waiting;
      log.appendChild(li); S.waiting = { text: text, el: li, client_id: newId() };
    }
    gateText.innerHTML = S.offer ? S.offer.html : "";
    gateText.scrollTop = 0;
    var link = $("ol-gate-link");
    if (S.offer && S.offer.url) { link.href = new URL(S.offer.url, location.href).href; link.parentNode.hidden = false; }
    else link.parentNode.hidden = true;
    $("ol-gate-changed").hidden = !S.changed;
    gate.hidden = false; moreCue(); stick();
    if (!preview) $("ol-accept").focus({ preventScroll: true });
  }
  function hideGate() { gate.hidden = true; }
  $("ol-decline").onclick = function () {
    // Declining sends nothing anywhere: the message goes back into the box, to keep or change.
    var w = S.waiting;
    if (w) { log.removeChild(w.el); input.value = w.text; resize(); }
    S.waiting = null; hideGate(); note(t.declined); input.focus();
  };
  $("ol-accept").onclick = function () { if (preview) hideGate(); else if (S.waiting) start(S.waiting, true); };

  // One Idempotency-Key per attempt to start (contract A): kept on the waiting message until the
  // start succeeds or is refused (4xx), so a retry whose answer was lost is not a second chat.
  var RETRY_STATUS = { 502: 1, 503: 1, 504: 1 }, START_TRIES = 8;
  function start(w, withConsent) {
    var body = { text: w.text, client_id: w.client_id, page_url: S.pageUrl, language: cfg.language };
    if (withConsent && S.offer) body.consent = { version: S.offer.version, language: S.offer.language, sha256: S.offer.sha256 };
    var headers = { "Content-Type": "application/json" };
    if (S.token) headers.Authorization = "Bearer " + S.token;
    var json = JSON.stringify(body);
    // The same key only with the same body: a changed body (a new consent text) is a new attempt.
    if (!w.key || w.keyBody !== json) { w.key = newId() + newId(); w.keyBody = json; }
    headers["Idempotency-Key"] = w.key;
    $("ol-accept").disabled = true;
    S.pending[w.client_id] = { text: w.text, el: w.el, conv: null, viaStart: true };
    w.el.classList.remove("ol-waiting"); w.el.classList.add("ol-pending"); w.el.lastChild.textContent = t.sending;
    var tries = 0;
    function attempt() {
      tries += 1;
      return fetch(cfg.start, { method: "POST", headers: headers, body: json, credentials: "omit" })
        .then(function (r) {
          if (RETRY_STATUS[r.status]) throw { retry: true };
          return r.json().then(function (d) { return { status: r.status, data: d }; });
        }, function () { throw { retry: true }; })
        .catch(function (err) {
          if (!(err && err.retry) || tries >= START_TRIES) throw err && err.retry ? new Error(t.error) : err;
          // Full jitter: many widgets retrying after one outage spread out instead of arriving together.
          var wait = Math.random() * Math.min(15000, 500 * Math.pow(2, tries));
          return new Promise(function (ok) { setTimeout(ok, wait); }).then(attempt);
        });
    }
    attempt()
      .then(function (res) {
        $("ol-accept").disabled = false;
        var d = res.data;
        if (res.status < 500) { w.key = null; }
        if (res.status === 201) {
          S.waiting = null; hideGate();
          S.token = d.token; save();
          S.conv = d.conversation; S.consentRequired = false; S.changed = false; S.hasConsent = !!d.record || S.hasConsent;
          render(d.message); updateMenu(); connect();
        } else if (res.status === 409) {
          delete S.pending[w.client_id]; w.el.classList.remove("ol-pending"); w.el.classList.add("ol-waiting");
          w.el.lastChild.textContent = t.waiting;
          S.offer = d.consent; S.consentRequired = true; S.changed = !!d.consent_changed;
          if (d.error === "consent_changed") note(t.changed);
          showGate(w.text);
        } else if (res.status === 401) {
          S.token = null; save(); start(w, withConsent);
        } else { throw new Error(d.message || t.error); }
      })
      .catch(function (err) {
        $("ol-accept").disabled = false; delete S.pending[w.client_id];
        w.el.classList.remove("ol-pending"); w.el.classList.add("ol-waiting");
        note(err && err.message ? err.message : t.error);
      });
  }

  function submit() {
    var text = input.value;
    if (!text.trim() || S.waiting) return;
    // Until the handle arrives the widget does not know who this is: keep the text and wait.
    if (!S.booted) { S.deferred = true; return; }
    input.value = ""; resize();
    if (preview) { log.appendChild(bubble(true, text, "")); stick(); return; }
    if (S.consentRequired && !convOpen()) { showGate(text); return; }
    if (!S.token) { var li = bubble(true, text, ""); log.appendChild(li); start({ text: text, el: li, client_id: newId() }, false); return; }
    var cid = newId(), li2 = bubble(true, text, "");
    li2.classList.add("ol-pending"); li2.lastChild.textContent = t.sending; log.appendChild(li2); stick();
    S.pending[cid] = { text: text, el: li2, conv: convOpen() ? S.conv.id : null };
    sendPending(cid);
  }
  function sendPending(cid, resend) {
    var p = S.pending[cid];
    if (p && !p.viaStart) send({ type: "message", text: p.text, client_id: cid, conversation: p.conv, page_url: S.pageUrl, resend: !!resend });
  }
  form.onsubmit = function (e) { e.preventDefault(); submit(); };
  function resize() { input.style.height = "auto"; input.style.height = Math.min(input.scrollHeight, 120) + "px"; }
  input.onkeydown = function (e) {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); submit(); }
    else if (e.key === "Escape") closeWidget();
  };
  input.oninput = function () {
    resize();
    var now = Date.now();
    if (convOpen() && S.ready && now - S.sentTyping > 2500) { S.sentTyping = now; send({ type: "typing", conversation: S.conv.id }); }
  };

  // ----- the websocket: token auth, resync from the last id, reconnect with back-off --------
  function send(frame) { if (S.ws && S.ready) { S.ws.send(JSON.stringify(frame)); return true; } return false; }
  // After a deploy, a restart or a Redis blip every open widget reconnects: full-jitter
  // exponential back-off (a random wait up to 1 s, 2 s, 4 s … 30 s) spreads them out, and the
  // count starts over only once a connection has stayed up, so a server that accepts and then
  // fails at once is not hammered. While disconnected the chat says "Reconnecting…"; typed
  // messages wait and are sent on "ready", which also hands back what was missed (last_id).
  var BACKOFF_BASE = 1000, BACKOFF_CAP = 30000, STABLE_AFTER = 10000, OPEN_TIMEOUT = 15000;
  function backoff(n) { return Math.random() * Math.min(BACKOFF_CAP, BACKOFF_BASE * Math.pow(2, n)); }
  function reconnectLater() {
    if (S.retryTimer) return;
    status(t.offline);
    S.retryTimer = setTimeout(function () { S.retryTimer = 0; connect(); }, backoff(S.retries++));
  }
  function connect() {
    if (!S.token || S.ws || preview) return;
    var ws;
    try { ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + cfg.ws); }
    catch (x) { reconnectLater(); return; }
    S.ws = ws;
    // A handshake or "ready" that never comes (a half-dead proxy) counts as a failed attempt.
    var opening = setTimeout(function () { if (S.ws === ws && !S.ready) ws.close(); }, OPEN_TIMEOUT);
    ws.onopen = function () { ws.send(JSON.stringify({ type: "auth", token: S.token, last_id: S.lastId, language: cfg.language })); };
    ws.onmessage = function (e) { var f; try { f = JSON.parse(e.data); } catch (x) { return; } handle(f); };
    ws.onclose = function (e) {
      clearTimeout(opening); clearTimeout(S.stableTimer);
      if (S.ws !== ws) return;
      S.ws = null; S.ready = false;
      if (e.code === 4401) {
        // The token is no longer valid: start over as a new client (consent asked again).
        S.token = null; save(); S.conv = null; S.hasConsent = false; S.offer = cfg.consent;
        S.consentRequired = !!cfg.consent; status(""); updateMenu(); return;
      }
      reconnectLater();
    };
  }
  // Back online (laptop woke up, network returned): try now instead of waiting out the back-off.
  window.addEventListener("online", function () {
    if (S.retryTimer) { clearTimeout(S.retryTimer); S.retryTimer = 0; connect(); }
  });
  function handle(f) {
    if (f.type === "ready") {
      S.ready = true; status("");
      clearTimeout(S.stableTimer); S.stableTimer = setTimeout(function () { S.retries = 0; }, STABLE_AFTER);
      S.token = f.token; save();
      S.conv = f.conversation; S.consentRequired = f.consent_required; S.hasConsent = f.has_consent; S.changed = !!f.consent_changed;
      if (f.consent) S.offer = f.consent;
      if ("hours" in f) showHours(f.hours);
      f.messages.forEach(render);
      if (S.conv && S.conv.status === "closed" && f.messages.length) note(t.closed);
      Object.keys(S.pending).forEach(function (cid) { sendPending(cid, true); });
      updateMenu(); ack();
    } else if (f.type === "message") {
      var fresh = render(f.message);
      if (fresh && f.message.sender === "operator") { typingEl.textContent = ""; if (!S.open) { S.unread++; tellParent({ openline: "unread", count: S.unread }); } }
      ack();
    } else if (f.type === "typing" && f.sender === "operator") {
      typingEl.textContent = t.typing.replace("%(name)s", f.name || t.operator);
      clearTimeout(S.typingTimer); S.typingTimer = setTimeout(function () { typingEl.textContent = ""; }, 4000);
    } else if (f.type === "marks" && f.sender === "visitor") {
      Object.keys(nodes).forEach(function (id) { if (+id <= f.up_to && nodes[id].classList.contains("ol-me")) mark(nodes[id], f.mark === "read" ? 3 : 2); });
    } else if (f.type === "conversation.started") {
      S.conv = f.conversation;
    } else if (f.type === "conversation.closed") {
      if (S.conv && S.conv.id === f.conversation.id) {
        // A withdrawal closes the chat too; its own notice says so, once.
        var was = S.conv.status; S.conv = f.conversation;
        if (was !== "closed" && !S.withdrawing) note(t.closed);
      }
    } else if (f.type === "withdrawn") {
      S.withdrawing = false; S.consentRequired = !!(S.offer || cfg.consent); S.hasConsent = false; S.changed = false;
      S.offer = S.offer || cfg.consent;
      if (S.conv) S.conv.status = "closed";
      note(t.withdrawn); updateMenu();
    } else if (f.type === "error") {
      refused(f);
    }
  }
  function refused(f) {
    // The service is down for a moment: the socket closes (1013) and reconnects, pending
    // messages are sent again once it is back; the status line says "Reconnecting…".
    if (f.code === "unavailable") { status(t.offline); return; }
    var p = f.client_id && S.pending[f.client_id];
    if (p) { delete S.pending[f.client_id]; log.removeChild(p.el); }
    if (f.code === "consent_required" && p) {
      S.consentRequired = true; S.changed = !!f.consent_changed; if (f.consent) S.offer = f.consent;
      showGate(p.text); return;
    }
    if (S.withdrawing && !p) S.withdrawing = false;
    if (f.code === "conversation_closed" && S.conv) S.conv.status = "closed";
    if (p) { input.value = p.text; resize(); }
    note(f.code === "rate_limited" ? t.limited : f.message || t.error);
  }
  function ack() {
    if (!S.lastOp) return;
    var kind = S.open && document.visibilityState === "visible" ? "read" : "delivered";
    if (S.acked[kind] >= S.lastOp.id) return;
    S.acked[kind] = S.lastOp.id; if (kind === "read") S.acked.delivered = S.lastOp.id;
    send({ type: kind, conversation: S.lastOp.conv, up_to: S.lastOp.id });
  }
  document.addEventListener("visibilitychange", ack);

  // ----- the menu: receipt download and withdrawal (confirmed once, in the widget) ----------
  function updateMenu() {
    var show = !!(S.token && S.hasConsent);
    menuBtn.hidden = !show; if (!show) { toggleMenu(false); confirmBox.hidden = true; }
  }
  function toggleMenu(open) {
    menu.hidden = !open; menuBtn.setAttribute("aria-expanded", open ? "true" : "false");
    if (open) menu.querySelector("button").focus();
  }
  menuBtn.onclick = function () { toggleMenu(menu.hidden); };
  menu.onkeydown = function (e) {
    var items = Array.prototype.slice.call(menu.querySelectorAll("button")), i = items.indexOf(document.activeElement);
    if (e.key === "Escape") { toggleMenu(false); menuBtn.focus(); }
    else if (e.key === "ArrowDown" || e.key === "ArrowUp") { e.preventDefault(); items[(i + (e.key === "ArrowDown" ? 1 : items.length - 1)) % items.length].focus(); }
  };
  // The token goes in a header, never in a URL, so the receipt is fetched and saved as a file.
  function downloadReceipt(url) {
    toggleMenu(false);
    fetch(url, { headers: { Authorization: "Bearer " + S.token }, credentials: "omit" }).then(function (r) {
      if (!r.ok) throw new Error(t.error);
      var name = (/filename="([^"]+)"/.exec(r.headers.get("Content-Disposition") || "") || [0, "consent-receipt.json"])[1];
      return r.blob().then(function (b) {
        var a = el("a"); a.href = URL.createObjectURL(b); a.download = name; document.body.appendChild(a); a.click();
        setTimeout(function () { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
      });
    }).catch(function () { note(t.error); });
  }
  $("ol-receipt").onclick = function () { downloadReceipt(cfg.receipt); };
  $("ol-receipt-html").onclick = function () { downloadReceipt(cfg.receipt + "?format=html"); };
  function closeConfirm() { confirmBox.hidden = true; menuBtn.focus(); }
  $("ol-withdraw").onclick = function () {
    toggleMenu(false); confirmBox.hidden = false; stick(); $("ol-confirm-no").focus({ preventScroll: true });
  };
  $("ol-confirm-no").onclick = closeConfirm;
  confirmBox.onkeydown = function (e) { if (e.key === "Escape") { e.stopPropagation(); closeConfirm(); } };
  $("ol-confirm-yes").onclick = function () {
    confirmBox.hidden = true;
    if (S.withdrawing) return;
    S.withdrawing = send({ type: "withdraw", page_url: S.pageUrl });
    if (!S.withdrawing) note(t.offline);
    input.focus();
  };

  // ----- talking to the host page's loader --------------------------------------------------
  function tellParent(msg) { if (embedded && !preview) window.parent.postMessage(msg, S.parentOrigin || "*"); }
  function closeWidget() { if (embedded && !preview) { S.open = false; tellParent({ openline: "close" }); } }
  $("ol-close").onclick = closeWidget;
  $("ol-close").hidden = !embedded || preview;
  function boot() {
    if (S.booted) return;
    S.booted = true; clearTimeout(S.bootTimer);
    if (S.token) S.consentRequired = false; // the server tells a returning client what it needs
    updateMenu(); connect();
    if (S.deferred) { S.deferred = false; submit(); }
  }
  window.addEventListener("message", function (e) {
    var m = e.data;
    if (e.source !== window.parent || !m || preview) return;
    var ancestors = location.ancestorOrigins;
    if (ancestors && ancestors.length && ancestors[0] !== e.origin) return;
    if (m.openline === "hello") {
      if (!S.parentOrigin) S.parentOrigin = e.origin;
      if (e.origin !== S.parentOrigin) return;
      setPage(m.url);
      var handed = typeof m.handle === "string" && m.handle.length < 500 ? m.handle : null;
      if (!S.booted && !S.token && handed) { S.token = handed; try { localStorage.setItem(KEY, JSON.stringify({ token: handed })); } catch (x) { /* blocked */ } }
      if (S.booted && S.token && S.token !== handed) save(); // keep the website's copy current
      boot();
    } else if (m.openline === "open") { S.open = true; S.unread = 0; setPage(m.url); input.focus(); ack(); }
    else if (m.openline === "page") setPage(m.url);
  });

  if (preview) {
    // What the administrator sees while configuring: the real widget, nothing sent or stored.
    S.booted = true;
    log.appendChild(bubble(true, t.sample_client, ""));
    log.appendChild(bubble(false, t.sample_operator, t.sample_name, ""));
    if (cfg.consent) showGate(null);
    return;
  }
  S.token = ownToken();
  if (embedded && !S.token) {
    // Wait (briefly) for the loader's copy; an older loader never sends one.
    S.bootTimer = setTimeout(boot, 2500);
    tellParent({ openline: "ready" });
  } else {
    tellParent({ openline: "ready" });
    boot();
  }
})();
