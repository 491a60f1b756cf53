/* Openline live chat widget: runs inside the iframe on Openline's origin, no framework.
   Client text is only ever inserted with textContent; the consent text is HTML sanitised
   by the server (nh3) and is the only innerHTML. */
(function () {
  "use strict";
  var cfg = JSON.parse(document.getElementById("ol-config").textContent);
  var t = cfg.t, KEY = "openline:" + cfg.code;
  function $(id) { return document.getElementById(id); }
  var log = $("ol-log"), scroller = $("ol-scroll"), gate = $("ol-gate"), gateText = $("ol-gate-text"),
    input = $("ol-text"), form = $("ol-compose"), statusEl = $("ol-status"), typingEl = $("ol-typing"),
    menuBtn = $("ol-menu-btn"), menu = $("ol-menu");
  var embedded = window.parent !== window;
  var S = {
    token: null, conv: null, offer: cfg.consent, consentRequired: !!cfg.consent, hasConsent: false,
    lastId: 0, lastOp: null, acked: { delivered: 0, read: 0 }, pending: {}, waiting: null,
    ws: null, ready: false, retries: 0, open: !embedded, pageUrl: "", unread: 0, sentTyping: 0, typingTimer: 0
  };
  var nodes = {};

  try { S.token = (JSON.parse(localStorage.getItem(KEY)) || {}).token || null; } catch (e) { S.token = null; }
  // A returning client learns from the server whether the consent must be asked again.
  if (S.token) S.consentRequired = false;
  function save() { try { localStorage.setItem(KEY, JSON.stringify({ token: S.token })); } catch (e) { /* private mode */ } }
  function setPage(url) { if (typeof url === "string" && /^https?:\/\//i.test(url)) S.pageUrl = url.slice(0, 2000); }
  try { setPage(decodeURIComponent(location.hash.slice(1))); } catch (e) { /* no page URL */ }
  if (!embedded) setPage(location.href);

  function newId() {
    var a = new Uint8Array(12); crypto.getRandomValues(a);
    return Array.prototype.map.call(a, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  }
  function stick() { scroller.scrollTop = scroller.scrollHeight; }
  function el(tag, cls, text) { var n = document.createElement(tag); if (cls) n.className = cls; if (text != null) n.textContent = text; return n; }
  function note(text) { var li = el("li", "ol-note", text); log.appendChild(li); stick(); return li; }
  function status(text) { statusEl.textContent = text || ""; statusEl.hidden = !text; }
  function convOpen() { return S.conv && S.conv.status !== "closed"; }

  function bubble(mine, text, who) {
    var li = el("li", "ol-msg " + (mine ? "ol-me" : "ol-op"));
    if (who) li.appendChild(el("span", "ol-who", who));
    li.appendChild(el("span", "ol-bubble", text));
    li.appendChild(el("span", "ol-meta"));
    return li;
  }
  function mark(li, level) {
    var names = ["", t.sent, t.delivered, t.read];
    if (level > (+li.dataset.mark || 0)) { li.dataset.mark = level; li.lastChild.textContent = names[level]; }
  }
  function render(m) {
    var li = nodes[m.id];
    if (!li) {
      var p = m.client_id && S.pending[m.client_id];
      if (p) { li = p.el; delete S.pending[m.client_id]; li.classList.remove("ol-pending"); }
      else { li = bubble(m.sender === "visitor", m.text, m.sender === "operator" ? (m.author || t.operator) : ""); log.appendChild(li); }
      li.dataset.id = m.id; nodes[m.id] = li;
    }
    if (m.sender === "visitor") mark(li, m.read_at ? 3 : m.delivered_at ? 2 : 1);
    if (m.id > S.lastId) S.lastId = m.id;
    if (m.sender === "operator" && (!S.lastOp || m.id > S.lastOp.id)) S.lastOp = { id: m.id, conv: m.conversation };
    stick();
  }

  // ----- the consent gate: the typed message waits here, in the browser --------------------
  function showGate(text) {
    if (!S.waiting) {
      var li = bubble(true, text, ""); li.classList.add("ol-waiting"); li.lastChild.textContent = t.waiting;
      log.appendChild(li); S.waiting = { text: text, el: li, client_id: newId() };
    }
    gateText.innerHTML = S.offer ? S.offer.html : "";
    gate.hidden = false; stick(); $("ol-accept").focus();
  }
  function hideGate() { gate.hidden = true; }
  $("ol-decline").onclick = function () {
    // Declining sends nothing anywhere: drop the waiting message and say so.
    if (S.waiting) log.removeChild(S.waiting.el);
    S.waiting = null; hideGate(); note(t.declined); input.focus();
  };
  $("ol-accept").onclick = function () { if (S.waiting) start(S.waiting, true); };

  function start(w, withConsent) {
    var body = { text: w.text, client_id: w.client_id, page_url: S.pageUrl, language: cfg.language };
    if (withConsent && S.offer) body.consent = { version: S.offer.version, language: S.offer.language, sha256: S.offer.sha256 };
    var headers = { "Content-Type": "application/json" };
    if (S.token) headers.Authorization = "Bearer " + S.token;
    $("ol-accept").disabled = true;
    S.pending[w.client_id] = { text: w.text, el: w.el, conv: null, viaStart: true };
    w.el.classList.remove("ol-waiting"); w.el.classList.add("ol-pending"); w.el.lastChild.textContent = t.sending;
    fetch(cfg.start, { method: "POST", headers: headers, body: JSON.stringify(body), credentials: "omit" })
      .then(function (r) { return r.json().then(function (d) { return { status: r.status, data: d }; }); })
      .then(function (res) {
        $("ol-accept").disabled = false;
        var d = res.data;
        if (res.status === 201) {
          S.waiting = null; hideGate();
          S.token = d.token; save();
          S.conv = d.conversation; S.consentRequired = false; S.hasConsent = !!d.record || S.hasConsent;
          render(d.message); updateMenu(); connect();
        } else if (res.status === 409) {
          delete S.pending[w.client_id]; w.el.classList.remove("ol-pending"); w.el.classList.add("ol-waiting");
          w.el.lastChild.textContent = t.waiting;
          S.offer = d.consent; S.consentRequired = true; note(t.changed); showGate(w.text);
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
    input.value = ""; resize();
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
  function send(frame) { if (S.ws && S.ready) S.ws.send(JSON.stringify(frame)); }
  function connect() {
    if (!S.token || S.ws) return;
    var ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + cfg.ws);
    S.ws = ws;
    ws.onopen = function () { ws.send(JSON.stringify({ type: "auth", token: S.token, last_id: S.lastId, language: cfg.language })); };
    ws.onmessage = function (e) { var f; try { f = JSON.parse(e.data); } catch (x) { return; } handle(f); };
    ws.onclose = function (e) {
      S.ws = null; S.ready = false;
      if (e.code === 4401) {
        // The token is no longer valid: start over as a new client (consent asked again).
        S.token = null; save(); S.conv = null; S.hasConsent = false; S.offer = cfg.consent;
        S.consentRequired = !!cfg.consent; status(""); updateMenu(); return;
      }
      status(t.offline);
      var delay = Math.min(15000, 400 * Math.pow(2, S.retries++)) * (0.75 + Math.random() / 2);
      setTimeout(connect, delay);
    };
  }
  function handle(f) {
    if (f.type === "ready") {
      S.ready = true; S.retries = 0; status("");
      S.token = f.token; save();
      S.conv = f.conversation; S.consentRequired = f.consent_required; S.hasConsent = f.has_consent;
      if (f.consent) S.offer = f.consent;
      f.messages.forEach(render);
      if (S.conv && S.conv.status === "closed" && f.messages.length) note(t.closed);
      Object.keys(S.pending).forEach(function (cid) { sendPending(cid, true); });
      updateMenu(); ack();
    } else if (f.type === "message") {
      render(f.message);
      if (f.message.sender === "operator") { typingEl.textContent = ""; if (!S.open) { S.unread++; tellParent({ openline: "unread", count: S.unread }); } }
      ack();
    } else if (f.type === "typing" && f.sender === "operator") {
      typingEl.textContent = t.typing.replace("%(name)s", f.name || t.operator);
      clearTimeout(S.typingTimer); S.typingTimer = setTimeout(function () { typingEl.textContent = ""; }, 4000);
    } else if (f.type === "marks" && f.sender === "visitor") {
      Object.keys(nodes).forEach(function (id) { if (+id <= f.up_to && nodes[id].classList.contains("ol-me")) mark(nodes[id], f.mark === "read" ? 3 : 2); });
    } else if (f.type === "conversation.started") {
      S.conv = f.conversation;
    } else if (f.type === "conversation.closed") {
      if (S.conv && S.conv.id === f.conversation.id) { S.conv = f.conversation; if (!S.withdrawing) note(t.closed); }
    } else if (f.type === "withdrawn") {
      S.withdrawing = false; S.consentRequired = true; S.hasConsent = false; S.offer = S.offer || cfg.consent;
      if (S.conv) S.conv.status = "closed";
      note(t.withdrawn); updateMenu();
    } else if (f.type === "error") {
      refused(f);
    }
  }
  function refused(f) {
    var p = f.client_id && S.pending[f.client_id];
    if (p) { delete S.pending[f.client_id]; log.removeChild(p.el); }
    if (f.code === "consent_required" && p) {
      S.consentRequired = true; if (f.consent) S.offer = f.consent; showGate(p.text); return;
    }
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

  // ----- the menu: receipt download and withdrawal ----------------------------------------
  function updateMenu() {
    var show = !!(S.token && S.hasConsent);
    menuBtn.hidden = !show; if (!show) toggleMenu(false);
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
  $("ol-withdraw").onclick = function () { toggleMenu(false); S.withdrawing = true; send({ type: "withdraw", page_url: S.pageUrl }); };

  // ----- talking to the host page's loader --------------------------------------------------
  function tellParent(msg) { if (embedded) window.parent.postMessage(msg, "*"); }
  function closeWidget() { if (embedded) { S.open = false; tellParent({ openline: "close" }); } }
  $("ol-close").onclick = closeWidget;
  $("ol-close").hidden = !embedded;
  window.addEventListener("message", function (e) {
    if (e.source !== window.parent || !e.data) return;
    if (e.data.openline === "open") { S.open = true; S.unread = 0; setPage(e.data.url); input.focus(); ack(); }
    else if (e.data.openline === "page") setPage(e.data.url);
  });
  tellParent({ openline: "ready" });
  updateMenu();
  connect();
})();
