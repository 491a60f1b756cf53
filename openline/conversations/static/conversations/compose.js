/* Canned replies in the reply box: "/" at the start or after a space opens a filtered list.
   ArrowUp/ArrowDown move, Enter or Tab inserts, Escape closes. Texts go in through textContent
   and the textarea's value only. */
(function () {
  "use strict";
  var cfgEl = document.getElementById("inbox-config");
  var box = document.getElementById("reply-text"), listEl = document.getElementById("canned-list");
  if (!cfgEl || !box || !listEl) return;
  var cfg = JSON.parse(cfgEl.textContent);
  var replies = null, loading = null, shown = [], active = -1, token = null;

  function load() {
    if (replies) return Promise.resolve(replies);
    if (!loading) {
      loading = fetch(cfg.canned_url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) { if (!r.ok) throw new Error(r.status); return r.json(); })
        .then(function (data) { replies = data.replies || []; return replies; })
        .catch(function () { loading = null; return []; });
    }
    return loading;
  }
  // The "/word" being typed just before the caret, or null.
  function currentToken() {
    var caret = box.selectionStart, before = box.value.slice(0, caret);
    if (box.selectionEnd !== caret) return null;
    var m = /(^|\s)\/([^\s\/]{0,40})$/.exec(before);
    if (!m) return null;
    return { start: caret - m[2].length - 1, end: caret, query: m[2].toLowerCase() };
  }
  function matches(query) {
    if (!replies) return [];
    var starts = [], contains = [];
    replies.forEach(function (r) {
      var s = r.shortcut.toLowerCase(), t = r.title.toLowerCase();
      if (!query || s.indexOf(query) === 0) starts.push(r);
      else if (s.indexOf(query) > 0 || t.indexOf(query) >= 0) contains.push(r);
    });
    return starts.concat(contains).slice(0, 8);
  }
  function close() {
    listEl.hidden = true; listEl.textContent = ""; shown = []; active = -1; token = null;
    box.setAttribute("aria-expanded", "false"); box.removeAttribute("aria-activedescendant");
  }
  function setActive(i) {
    active = i;
    Array.prototype.forEach.call(listEl.children, function (li, n) {
      var on = n === i; li.setAttribute("aria-selected", on ? "true" : "false"); li.classList.toggle("active", on);
      if (on) { box.setAttribute("aria-activedescendant", li.id); li.scrollIntoView({ block: "nearest" }); }
    });
  }
  function open(tok) {
    token = tok; shown = matches(tok.query); listEl.textContent = "";
    if (!shown.length) {
      var none = document.createElement("li"); none.className = "canned-none"; none.setAttribute("role", "option");
      none.setAttribute("aria-disabled", "true"); none.id = "canned-none";
      none.textContent = replies && replies.length ? "No canned reply matches /" + tok.query : "No canned replies yet — add some on the Canned replies page.";
      listEl.appendChild(none);
    }
    shown.forEach(function (r, i) {
      var li = document.createElement("li"); li.id = "canned-opt-" + r.id; li.setAttribute("role", "option");
      var head = document.createElement("span"); head.className = "canned-head";
      var sc = document.createElement("code"); sc.textContent = "/" + r.shortcut; head.appendChild(sc);
      var ti = document.createElement("strong"); ti.textContent = r.title; head.appendChild(ti);
      if (r.shared) { var b = document.createElement("span"); b.className = "canned-shared"; b.textContent = "Shared"; head.appendChild(b); }
      li.appendChild(head);
      var tx = document.createElement("span"); tx.className = "canned-preview"; tx.textContent = r.text; li.appendChild(tx);
      li.addEventListener("mousedown", function (e) { e.preventDefault(); insert(i); });
      listEl.appendChild(li);
    });
    listEl.hidden = false; box.setAttribute("aria-expanded", "true");
    setActive(shown.length ? 0 : -1);
  }
  function insert(i) {
    var r = shown[i], tok = token;
    if (!r || !tok) return;
    var value = box.value, text = r.text;
    box.value = value.slice(0, tok.start) + text + value.slice(tok.end);
    var caret = tok.start + text.length;
    box.setSelectionRange(caret, caret);
    close(); box.focus();
    box.dispatchEvent(new Event("input", { bubbles: true }));
  }
  function refresh() {
    var tok = currentToken();
    if (!tok) { close(); return; }
    load().then(function () { var now = currentToken(); if (now) open(now); else close(); });
  }
  box.addEventListener("input", refresh);
  box.addEventListener("click", refresh);
  box.addEventListener("blur", function () { setTimeout(close, 100); });
  // Capture: runs before the inbox's Enter-sends handler, which must not fire while choosing.
  box.addEventListener("keydown", function (e) {
    if (listEl.hidden) return;
    var n = shown.length, handled = true;
    if (e.key === "ArrowDown") { if (n) setActive((active + 1) % n); }
    else if (e.key === "ArrowUp") { if (n) setActive((active - 1 + n) % n); }
    else if ((e.key === "Enter" || e.key === "Tab") && !e.shiftKey && !e.isComposing) {
      if (n && active >= 0) insert(active); else { close(); handled = false; }
    }
    else if (e.key === "Escape") close();
    else handled = false;
    if (handled) { e.preventDefault(); e.stopImmediatePropagation(); }
  }, true);
  box.addEventListener("keyup", function (e) {
    if (e.key === "ArrowLeft" || e.key === "ArrowRight" || e.key === "Home" || e.key === "End") refresh();
  });
})();
