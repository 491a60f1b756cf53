/* Operator workspace: live inbox, chat window, reply box. Client text only ever goes through textContent. */
(function () {
  "use strict";
  var cfg = JSON.parse(document.getElementById("inbox-config").textContent);
  function $(id) { return document.getElementById(id); }
  var list = $("conv-list"), chatLog = $("chat-log"), reply = $("chat-reply"), replyText = $("reply-text"),
    typingEl = $("chat-typing"), liveState = $("live-state");
  var ws = null, ready = false, retries = 0, lastId = cfg.last_id || 0, pending = {}, nodes = {}, unreadTotal = 0;
  var lastNoteId = cfg.last_note_id || 0, noteNodes = {}, pendingNotes = {}, mode = "reply";
  var baseTitle = document.title, readUpTo = 0, lastVisitorId = 0, typingTimer = 0, sentTyping = 0;

  function el(tag, cls, text) { var n = document.createElement(tag); if (cls) n.className = cls; if (text != null) n.textContent = text; return n; }
  function newId() { var a = new Uint8Array(12); crypto.getRandomValues(a); return Array.prototype.map.call(a, function (b) { return ("0" + b.toString(16)).slice(-2); }).join(""); }
  function ago(iso) {
    if (!iso) return "";
    var d = new Date(iso), s = (Date.now() - d) / 1000;
    if (s < 60) return "now"; if (s < 3600) return Math.floor(s / 60) + " min";
    if (s < 86400) return d.toTimeString().slice(0, 5); return d.toLocaleDateString();
  }
  function refreshTimes() { document.querySelectorAll("time.conv-time").forEach(function (t) { t.textContent = ago(t.getAttribute("datetime")); }); }

  // ----- the inbox list ------------------------------------------------------------------
  function inBox(c) {
    switch (cfg.box) {
      case "new": return c.status === "new";
      case "waiting": return c.status === "open" && c.last_message_sender === "visitor";
      case "mine": return c.assignee === cfg.me && c.status !== "closed";
      case "closed": return c.status === "closed";
      default: return c.status !== "closed";
    }
  }
  function row(c) {
    var li = el("li", "conv-row" + (c.id === cfg.current ? " active" : "")); li.dataset.id = c.id;
    var a = el("a"); a.href = cfg.inbox_url + c.id + "/?box=" + encodeURIComponent(cfg.box);
    var top = el("span", "conv-top"); top.appendChild(el("strong", "conv-visitor", c.visitor));
    var time = el("time", "conv-time", ago(c.last_message_at)); time.setAttribute("datetime", c.last_message_at || ""); top.appendChild(time);
    a.appendChild(top);
    a.appendChild(el("span", "conv-preview", (c.last_message_sender === "operator" ? "You: " : "") + (c.preview || "No messages yet")));
    var meta = el("span", "conv-meta");
    meta.appendChild(el("span", "badge badge-" + c.status, c.status.charAt(0).toUpperCase() + c.status.slice(1)));
    meta.appendChild(document.createTextNode(" "));
    meta.appendChild(el("span", "muted", c.channel_name + (c.assignee_name ? " · " + c.assignee_name : "")));
    var badge = el("span", "unread", String(c.unread || 0)); badge.hidden = !c.unread; meta.appendChild(badge);
    a.appendChild(meta); li.appendChild(a);
    return li;
  }
  function upsert(c, moveTop) {
    if (!list) return;
    refreshCounts();
    var old = list.querySelector('li[data-id="' + c.id + '"]');
    if (c.id === cfg.current && document.visibilityState === "visible") c.unread = 0;
    setStatus(c);
    if (cfg.search) { if (old) list.replaceChild(searchRow(c, old), old); return; }
    if (!inBox(c)) { if (old) old.remove(); return; }
    var fresh = row(c);
    if (old && !moveTop) list.replaceChild(fresh, old);
    else { if (old) old.remove(); list.insertBefore(fresh, list.firstChild); }
    var empty = $("conv-empty"); if (empty) empty.remove();
    updateTitle();
  }
  function searchRow(c, old) {
    // A search result keeps its matching snippet; only the name, state and counts move.
    var fresh = row(c), snip = old.querySelector(".conv-snippet");
    if (snip) fresh.querySelector(".conv-preview").replaceWith(snip);
    fresh.querySelector("a").href = old.querySelector("a").href;
    return fresh;
  }
  function setStatus(c) {
    var st = $("chat-status");
    if (!st || c.id !== cfg.current) return;
    st.textContent = c.status.charAt(0).toUpperCase() + c.status.slice(1);
    st.className = "badge badge-" + c.status;
  }
  var countsTimer = 0;
  function refreshCounts() {
    // The box counts cover conversations outside this list too: ask the page again, quietly.
    if (countsTimer) return;
    countsTimer = setTimeout(function () {
      countsTimer = 0;
      fetch(location.pathname + location.search, { credentials: "same-origin" }).then(function (r) { return r.text(); }).then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        doc.querySelectorAll("[data-box-count]").forEach(function (n) {
          var mine = document.querySelector('[data-box-count="' + n.dataset.boxCount + '"]');
          if (mine) mine.textContent = n.textContent;
        });
      }).catch(function () { /* counts refresh on the next event */ });
    }, 700);
  }
  function updateTitle() {
    unreadTotal = 0;
    list.querySelectorAll(".unread").forEach(function (b) { if (!b.hidden) unreadTotal += +b.textContent || 0; });
    document.title = (unreadTotal ? "(" + unreadTotal + ") " : "") + baseTitle;
  }
  function beep() {
    try {
      var Ctx = window.AudioContext || window.webkitAudioContext; if (!Ctx) return;
      var ctx = beep.ctx || (beep.ctx = new Ctx()), o = ctx.createOscillator(), g = ctx.createGain();
      o.frequency.value = 880; g.gain.setValueAtTime(0.08, ctx.currentTime); g.gain.exponentialRampToValueAtTime(0.0001, ctx.currentTime + 0.25);
      o.connect(g); g.connect(ctx.destination); o.start(); o.stop(ctx.currentTime + 0.25);
    } catch (e) { /* sound is a nicety */ }
  }

  // ----- the chat window -----------------------------------------------------------------
  function render(m) {
    if (!chatLog || m.conversation !== cfg.current) return;
    var li = nodes[m.id] || chatLog.querySelector('li[data-id="' + m.id + '"]');
    if (!li && m.client_id && pending[m.client_id]) { li = pending[m.client_id]; delete pending[m.client_id]; li.classList.remove("pending"); }
    if (!li) {
      li = el("li", "chat-msg chat-" + m.sender);
      li.appendChild(el("span", "chat-author", m.sender === "visitor" ? chatLog.dataset.visitor : (m.author || "Openline")));
      li.appendChild(el("span", "chat-bubble", m.text));
      var time = el("time", "chat-time", new Date(m.created_at).toTimeString().slice(0, 5)); time.setAttribute("datetime", m.created_at);
      li.appendChild(time);
      chatLog.appendChild(li);
    }
    li.dataset.id = m.id; nodes[m.id] = li;
    if (m.id > lastId) lastId = m.id;
    if (m.sender === "visitor" && m.id > lastVisitorId) lastVisitorId = m.id;
    // Messenger messages carry the platform's delivery state instead (``delivery`` events).
    if (m.sender === "operator" && !cfg.messenger) markOwn(li, m.read_at ? "Read" : m.delivered_at ? "Delivered" : "Sent");
    if (deliveries[m.id]) { showDelivery(li, deliveries[m.id]); delete deliveries[m.id]; }
    chatLog.scrollTop = chatLog.scrollHeight;
  }
  function when(iso) { return new Date(iso).toTimeString().slice(0, 5); }
  function renderNote(n) {
    if (!chatLog || n.conversation !== cfg.current) return;
    var li = noteNodes[n.id] || chatLog.querySelector('li[data-note-id="' + n.id + '"]');
    if (!li && n.client_id && pendingNotes[n.client_id]) {
      li = pendingNotes[n.client_id]; delete pendingNotes[n.client_id]; li.classList.remove("pending");
      li.querySelector(".chat-author").textContent = "Private note · " + (n.author || "Former operator");
    }
    if (!li) {
      li = el("li", "chat-msg chat-note-item");
      li.appendChild(el("span", "chat-author", "Private note · " + (n.author || "Former operator")));
      li.appendChild(el("span", "chat-bubble", n.text));
      chatLog.appendChild(li);
    }
    if (!li.querySelector("time")) {
      var t = el("time", "chat-time", when(n.created_at)); t.setAttribute("datetime", n.created_at); li.appendChild(t);
    }
    li.dataset.noteId = n.id; noteNodes[n.id] = li;
    if (n.id > lastNoteId) lastNoteId = n.id;
    chatLog.scrollTop = chatLog.scrollHeight;
  }
  function markOwn(li, text) {
    var order = { Sent: 1, Delivered: 2, Read: 3 }, m = li.querySelector(".chat-mark");
    if (!m) { m = el("span", "chat-mark"); li.appendChild(m); }
    if ((order[text] || 0) > (order[m.textContent] || 0)) m.textContent = text;
  }
  // ----- messenger delivery marks ------------------------------------------------------------
  var deliveries = {}, LABELS = { queued: "Queued", sent: "Sent", delivered: "Delivered", read: "Read", failed: "Not delivered" };
  function showDelivery(li, d) {
    var mark = li.querySelector(".chat-delivery");
    if (!d.delivery_state) return;
    if (!mark) { mark = el("span"); li.appendChild(mark); }
    mark.className = "chat-delivery delivery-" + d.delivery_state; mark.dataset.state = d.delivery_state;
    mark.textContent = LABELS[d.delivery_state] || d.delivery_state;
    if (d.delivery_state !== "failed") return;
    mark.appendChild(document.createTextNode(": "));
    mark.appendChild(el("span", "chat-delivery-error", d.delivery_error || ""));
    var form = $("resend-form");
    if (!form || !cfg.resend_url) return;
    var btn = el("button", "btn btn-sm resend", "Resend"); btn.type = "submit";
    btn.setAttribute("form", "resend-form");
    btn.setAttribute("formaction", cfg.resend_url.replace(/\/0\/resend\/$/, "/" + d.id + "/resend/"));
    mark.appendChild(document.createTextNode(" ")); mark.appendChild(btn);
  }
  function delivery(f) {
    if (f.conversation !== cfg.current || !chatLog) return;
    f.messages.forEach(function (d) {
      var li = nodes[d.id] || chatLog.querySelector('li[data-id="' + d.id + '"]');
      if (li) showDelivery(li, d); else deliveries[d.id] = d;  // the message event is on its way
    });
  }
  function markRead() {
    if (!cfg.current || document.visibilityState !== "visible" || lastVisitorId <= readUpTo) return;
    readUpTo = lastVisitorId;
    send({ type: "read", conversation: cfg.current, up_to: lastVisitorId });
  }
  if (chatLog) {
    chatLog.querySelectorAll("li[data-note-id]").forEach(function (li) { noteNodes[+li.dataset.noteId] = li; });
    chatLog.querySelectorAll("li[data-id]").forEach(function (li) {
      var id = +li.dataset.id; nodes[id] = li;
      if (li.classList.contains("chat-visitor") && id > lastVisitorId) lastVisitorId = id;
    });
    chatLog.scrollTop = chatLog.scrollHeight;
  }
  function submitReply() {
    var text = replyText.value;
    if (!text.trim()) return;
    if (mode === "note") { submitNote(text); return; }
    replyText.value = "";
    var cid = newId(), li = el("li", "chat-msg chat-operator pending");
    li.appendChild(el("span", "chat-author", "You")); li.appendChild(el("span", "chat-bubble", text));
    chatLog.appendChild(li); chatLog.scrollTop = chatLog.scrollHeight;
    pending[cid] = li; li.dataset.text = text; li.dataset.cid = cid;
    send({ type: "reply", conversation: cfg.current, text: text, client_id: cid });
  }
  function submitNote(text) {
    if (!ready) { reply.submit(); return; }  // no live connection: the form posts the note
    replyText.value = "";
    var cid = newId(), li = el("li", "chat-msg chat-note-item pending");
    li.appendChild(el("span", "chat-author", "Private note · You")); li.appendChild(el("span", "chat-bubble", text));
    chatLog.appendChild(li); chatLog.scrollTop = chatLog.scrollHeight;
    pendingNotes[cid] = li; li.dataset.text = text;
    send({ type: "note", conversation: cfg.current, text: text, client_id: cid });
  }
  // ----- Reply / Private note tabs -------------------------------------------------------------
  var tabReply = $("tab-reply"), tabNote = $("tab-note"), hint = $("compose-hint"), sendBtn = $("compose-send");
  function setMode(next, focus) {
    mode = next;
    if (reply) reply.classList.toggle("mode-note", mode === "note");
    [tabReply, tabNote].forEach(function (t) {
      if (!t) return;
      var on = (t === tabNote) === (mode === "note");
      t.setAttribute("aria-selected", on ? "true" : "false"); t.tabIndex = on ? 0 : -1;
    });
    if (hint) hint.textContent = mode === "note" ? "Private note — the client never sees this" : "Type / for canned replies";
    if (replyText) replyText.placeholder = mode === "note" ? "Write a private note for the operators…" : "Write a reply… Enter sends, Shift+Enter adds a line";
    if ($("reply-label")) $("reply-label").textContent = mode === "note" ? "Private note" : "Reply";
    if (sendBtn) sendBtn.textContent = mode === "note" ? "Add note" : "Send";
    if (focus && replyText) replyText.focus();
  }
  if (reply && reply.classList.contains("mode-note")) mode = "note";
  if (tabReply) tabReply.onclick = function () { setMode("reply", true); };
  if (tabNote) tabNote.onclick = function () { setMode("note", true); };
  [tabReply, tabNote].forEach(function (t) {
    if (t) t.onkeydown = function (e) {
      if ((e.key === "ArrowLeft" || e.key === "ArrowRight") && tabReply && tabNote) {
        e.preventDefault(); var other = t === tabReply ? tabNote : tabReply; other.focus(); setMode(other === tabNote ? "note" : "reply", false);
      }
    };
  });
  window.openlineCompose = { mode: function () { return mode; } };
  if (reply) {
    reply.onsubmit = function (e) { e.preventDefault(); submitReply(); };
    replyText.onkeydown = function (e) { if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); submitReply(); } };
    replyText.oninput = function () {
      var now = Date.now();
      if (ready && mode === "reply" && now - sentTyping > 2500) { sentTyping = now; send({ type: "typing", conversation: cfg.current }); }
    };
  }

  // ----- Close / Transfer buttons, the three-dot menu and their dialogs ------------------------
  function opener(button, dialogId) {
    var d = $(dialogId);
    if (!button || !d) return;
    button.addEventListener("click", function () { if ($("chat-menu")) $("chat-menu").open = false; d.showModal(); });
  }
  opener($("open-transfer"), "transfer-dialog");
  opener($("open-close"), "close-dialog");
  opener($("open-withdrawal"), "withdrawal-dialog");
  document.querySelectorAll("[data-opens]").forEach(function (b) { opener(b, b.dataset.opens); });
  document.querySelectorAll("[data-closes]").forEach(function (b) { b.addEventListener("click", function () { $(b.dataset.closes).close(); }); });
  var clientToggle = $("client-toggle"), clientPanel = $("client-panel");
  if (clientToggle && clientPanel) {
    clientToggle.onclick = function () {
      var open = clientToggle.getAttribute("aria-expanded") !== "true";
      clientToggle.setAttribute("aria-expanded", open ? "true" : "false");
      clientPanel.classList.toggle("open", open);
      if (open) clientPanel.scrollIntoView({ block: "nearest" });
    };
  }

  // ----- the websocket -------------------------------------------------------------------
  function send(frame) { if (ws && ready) ws.send(JSON.stringify(frame)); }
  // Reconnects after a deploy, restart or Redis blip use full-jitter exponential back-off (a
  // random wait up to 1 s, 2 s, 4 s … 30 s; the count starts over once a connection has stayed
  // up 10 s) and show a banner meanwhile; "ready" resyncs the open chat from the last id.
  var retryTimer = 0, stableTimer = 0;
  function backoff(n) { return Math.random() * Math.min(30000, 1000 * Math.pow(2, n)); }
  function reconnecting(on) {
    var banner = $("reconnecting");
    if (!on) { if (banner) banner.hidden = true; return; }
    if (!banner) {
      banner = el("div", "flash flash-warning", "Reconnecting… Live updates are paused; replies you send go out when the connection is back.");
      banner.id = "reconnecting"; banner.setAttribute("role", "status");
      var inbox = document.querySelector(".inbox");
      if (inbox) inbox.parentNode.insertBefore(banner, inbox); else document.body.prepend(banner);
    }
    banner.hidden = false;
  }
  function reconnectLater() {
    if (retryTimer) return;
    reconnecting(true);
    retryTimer = setTimeout(function () { retryTimer = 0; connect(); }, backoff(retries++));
  }
  function connect() {
    try { ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws/console/"); }
    catch (x) { ws = null; reconnectLater(); return; }
    var mine = ws, opening = setTimeout(function () { if (ws === mine && !ready) mine.close(); }, 15000);
    ws.onmessage = function (e) { var f; try { f = JSON.parse(e.data); } catch (x) { return; } handle(f); };
    ws.onclose = function (e) {
      clearTimeout(opening); clearTimeout(stableTimer);
      if (ws !== mine) return;
      ready = false; ws = null; liveState.textContent = "offline"; liveState.className = "live-dot";
      if (e.code === 4403) { noAccess(); return; }
      // Signed out (logout, idle timeout, password change): reconnecting would be refused
      // again; a reload lands on the login page, or back here if the session still holds.
      // Once per 30 s at most, so a socket refused for another reason cannot loop reloads.
      if (e.code === 4401 && reloadAllowed()) { location.reload(); return; }
      reconnectLater();
    };
  }
  window.addEventListener("online", function () {
    if (retryTimer) { clearTimeout(retryTimer); retryTimer = 0; connect(); }
  });
  function reloadAllowed() {
    var key = "openline.inbox.reloaded", now = Date.now(), last = 0;
    try { last = +sessionStorage.getItem(key) || 0; sessionStorage.setItem(key, String(now)); } catch (x) { return true; }
    return now - last > 30000;
  }
  function noAccess() {
    liveState.textContent = "no access";
    if ($("no-access")) return;
    var note = el("div", "flash flash-error", "You no longer have access to the inbox. Ask an administrator, or sign in again.");
    note.id = "no-access"; note.setAttribute("role", "alert");
    var inbox = document.querySelector(".inbox");
    if (inbox) inbox.parentNode.insertBefore(note, inbox);
    if (replyText) replyText.disabled = true;
    if (reply) reply.querySelectorAll("button").forEach(function (b) { b.disabled = true; });
  }
  function handle(f) {
    if (f.type === "ready") {
      ready = true; liveState.textContent = "live"; liveState.className = "live-dot on"; reconnecting(false);
      clearTimeout(stableTimer); stableTimer = setTimeout(function () { retries = 0; }, 10000);
      if (cfg.current) send({ type: "sync", conversation: cfg.current, last_id: lastId, last_note_id: lastNoteId });
      Object.keys(pending).forEach(function (cid) { send({ type: "reply", conversation: cfg.current, text: pending[cid].dataset.text, client_id: cid }); });
      Object.keys(pendingNotes).forEach(function (cid) { send({ type: "note", conversation: cfg.current, text: pendingNotes[cid].dataset.text, client_id: cid }); });
      markRead();
    } else if (f.type === "history") {
      f.messages.forEach(render); (f.notes || []).forEach(renderNote); markRead();
    } else if (f.type === "note.added") {
      renderNote(f.note);
    } else if (f.type === "message") {
      var m = f.message;
      if (f.conversation) upsert(f.conversation, true);
      render(m);
      if (m.sender === "visitor") {
        send({ type: "delivered", conversation: m.conversation, up_to: m.id });
        if (m.conversation === cfg.current) { typingEl.textContent = ""; markRead(); }
        if (m.conversation !== cfg.current || document.visibilityState !== "visible") beep();
      }
    } else if (f.type === "conversation.started") {
      upsert(f.conversation, true); beep();
    } else if (f.type === "conversation.closed" || f.type === "conversation.transferred") {
      upsert(f.conversation, false);
    } else if (f.type === "marks") {
      if (f.conversation_state) upsert(f.conversation_state, false);
      if (f.conversation === cfg.current && f.sender === "operator") {
        Object.keys(nodes).forEach(function (id) { if (+id <= f.up_to && nodes[id].classList.contains("chat-operator")) markOwn(nodes[id], f.mark === "read" ? "Read" : "Delivered"); });
      }
    } else if (f.type === "delivery") {
      delivery(f);
    } else if (f.type === "typing" && f.sender === "visitor" && f.conversation === cfg.current) {
      typingEl.textContent = "The client is typing…";
      clearTimeout(typingTimer); typingTimer = setTimeout(function () { typingEl.textContent = ""; }, 4000);
    } else if (f.type === "error" && f.code === "unavailable") {
      // The database or Redis is down for a moment: the socket closes (1013) and reconnects.
      liveState.textContent = "reconnecting"; liveState.className = "live-dot";
    } else if (f.type === "error") {
      var li = f.client_id && (pending[f.client_id] || pendingNotes[f.client_id]);
      if (li) { delete pending[f.client_id]; delete pendingNotes[f.client_id]; li.remove(); replyText.value = li.dataset.text; }
      var note = el("li", "chat-error", f.message || "Something went wrong."); note.setAttribute("role", "alert");
      if (chatLog) { chatLog.appendChild(note); chatLog.scrollTop = chatLog.scrollHeight; }
    }
  }
  document.addEventListener("visibilitychange", function () { if (document.visibilityState === "visible") { markRead(); updateTitle(); } });
  refreshTimes(); setInterval(refreshTimes, 30000);
  if (list) updateTitle();
  connect();
})();
