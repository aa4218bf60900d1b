// shebao web chat: the browser side of WEB-PROTOCOL.md.
//
// One rule shapes this file: text from the server or the user reaches the DOM
// only through textContent / createTextNode. The page runs under a strict CSP
// (no inline script or style, no string-to-code), and a test greps this file
// for the usual HTML-injection sinks, so none of them may appear, not even in
// a comment.
'use strict';

(() => {
  const STRINGS = {
    zh: {
      title: '社保医保助手',
      privacy: '身份证号和手机号只用于核对，显示时会隐藏部分数字',
      label: '输入您的问题',
      placeholder: '请输入您的问题',
      codePlaceholder: '6位验证码',
      send: '发送',
      typing: '正在输入…',
      you: '您：',
      bot: '助手：',
      pending: '等待发送，连接恢复后会自动发出',
      offline: '暂时连不上，正在重试…',
      disconnected: '连接已断开，正在重连…',
      reconnected: '已重新连接',
      english: '英文',
      conversation: '对话记录',
      tooLong: '消息太长了，请分几次发送。',
      idle: '已暂停连接，输入内容时会自动恢复',
    },
    en: {
      title: 'Social & medical insurance assistant',
      privacy: 'ID and phone numbers are only used to check who you are and are shown masked',
      label: 'Type your question',
      placeholder: 'Type your question',
      codePlaceholder: '6-digit code',
      send: 'Send',
      typing: 'Typing…',
      you: 'You: ',
      bot: 'Assistant: ',
      pending: 'Waiting to send; it goes out when the connection is back',
      offline: 'Can’t connect yet, retrying…',
      disconnected: 'Connection lost, reconnecting…',
      reconnected: 'Reconnected',
      english: 'English',
      conversation: 'Conversation',
      tooLong: 'That message is too long; please send it in parts.',
      idle: 'Paused; it reconnects when you type',
    },
  };
  const LANG_KEY = 'shebao.lang';
  const MAX_BACKOFF = 30000;
  // Hide the typing indicator eventually even if no reply comes, so a lost
  // reply does not leave the user watching dots forever.
  const TYPING_TIMEOUT = 45000;
  const NOTICE_MS = 8000;
  // The server closes a socket on a frame over 8 KiB; check before sending.
  const MAX_FRAME = 8192;
  // Close codes (PROTOCOL.md): the session ended (after /forget): reconnect
  // at once for a new one; idle: reconnect when the user is back.
  const CLOSE_ENDED = 4000;
  const CLOSE_IDLE = 4001;
  const CLOSE_GOING_AWAY = 1001;

  const $ = (id) => document.getElementById(id);
  const main = $('main');
  const log = $('log');
  const form = $('composer');
  const input = $('input');
  const typingEl = $('typing');
  const typingText = $('typing-text');
  const statusEl = $('status');
  const reduceMotion = window.matchMedia('(prefers-reduced-motion: reduce)');

  let lang = initialLang();
  let ws = null;
  let ready = false;        // welcome received on the current socket
  let everReady = false;    // distinguishes "never connected" from "lost it"
  let attempt = 0;          // consecutive connects without a welcome, for backoff
  let reconnectTimer = 0;
  let typingTimer = 0;
  let statusTimer = 0;
  let statusKey = null;     // set when the status line is ours, so a language switch can redo it
  let codeMode = false;
  let idle = false;         // the server closed an idle socket: reconnect on activity
  // Messages not yet acknowledged, in the order the user produced them:
  // {msg, li, sent}. Each has an id, so a message resent after a reconnect
  // is answered once; the server acks it when it is settled.
  const outbox = [];
  const lastPress = new WeakMap();
  const idRand = () => Math.random().toString(36).slice(2, 10);
  const encoder = new TextEncoder();

  // ---- language -------------------------------------------------------------

  function initialLang() {
    let saved = null;
    try { saved = localStorage.getItem(LANG_KEY); } catch (_) { /* storage may be disabled */ }
    if (saved === 'zh' || saved === 'en') return saved;
    return /^zh\b/i.test(navigator.language || 'zh') ? 'zh' : 'en';
  }

  function t(key) { return STRINGS[lang][key]; }

  function setLang(next, remember) {
    lang = next;
    document.documentElement.lang = next === 'zh' ? 'zh-CN' : 'en';
    document.title = t('title');
    for (const node of document.querySelectorAll('[data-i18n]')) node.textContent = t(node.dataset.i18n);
    for (const node of document.querySelectorAll('[data-i18n-label]')) node.setAttribute('aria-label', t(node.dataset.i18nLabel));
    for (const b of document.querySelectorAll('.langs button')) {
      b.setAttribute('aria-pressed', String(b.dataset.lang === next));
    }
    input.placeholder = t(codeMode ? 'codePlaceholder' : 'placeholder');
    if (statusKey) statusEl.textContent = t(statusKey);
    if (typingEl.classList.contains('on')) typingText.textContent = t('typing');
    if (remember) {
      try { localStorage.setItem(LANG_KEY, next); } catch (_) { /* not fatal */ }
    }
  }

  // ---- small DOM helpers -----------------------------------------------------

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text != null) node.textContent = text;
    return node;
  }

  // An interface string that follows the language toggle after it is created.
  function uiText(tag, cls, key) {
    const node = el(tag, cls, t(key));
    node.dataset.i18n = key;
    return node;
  }

  // Only http(s) may become a link: a script or data URL from a
  // compromised or buggy server must stay inert text.
  function safeURL(s) {
    if (typeof s !== 'string') return null;
    try {
      const u = new URL(s);
      return u.protocol === 'https:' || u.protocol === 'http:' ? u.href : null;
    } catch (_) {
      return null;
    }
  }

  function externalLink(cls, href) {
    const a = el('a', cls);
    a.href = href;
    a.rel = 'noopener noreferrer';
    a.target = '_blank';
    return a;
  }

  // Newest message in view. A reply taller than the log is shown from its top,
  // because its first lines are the answer and its end is usually the sources.
  function reveal(node) {
    const behavior = reduceMotion.matches ? 'auto' : 'smooth';
    if (node && node.offsetHeight > main.clientHeight) {
      node.scrollIntoView({ block: 'start', behavior });
    } else {
      followUntil = Date.now() + 1000;
      main.scrollTo({ top: main.scrollHeight, behavior });
    }
  }

  // The log area shrinks when the status line appears, the textarea grows or
  // the phone keyboard opens; a reader at the bottom should stay there. A
  // smooth scroll still under way counts as "at the bottom" (followUntil).
  let atBottom = true;
  let followUntil = 0;
  main.addEventListener('scroll', () => {
    atBottom = main.scrollHeight - main.scrollTop - main.clientHeight < 24;
  }, { passive: true });
  if (window.ResizeObserver) {
    new ResizeObserver(() => {
      if (atBottom || Date.now() < followUntil) main.scrollTop = main.scrollHeight;
    }).observe(main);
  }

  // ---- rendering replies -----------------------------------------------------

  function renderSpan(span) {
    let node = document.createTextNode(typeof span.text === 'string' ? span.text : '');
    if (span.i) { const em = el('em'); em.append(node); node = em; }
    if (span.b) { const strong = el('strong'); strong.append(node); node = strong; }
    const href = safeURL(span.href);
    if (href) { const a = externalLink(null, href); a.append(node); node = a; }
    return node;
  }

  // Statute text keeps its paragraphs: one <p> per line.
  function paragraphs(parent, text) {
    for (const line of String(text).split('\n')) {
      if (line.trim()) parent.append(el('p', null, line));
    }
  }

  function renderCite(c) {
    const d = el('details', 'cite');
    d.append(el('summary', null, typeof c.label === 'string' ? c.label : ''));
    if (typeof c.text === 'string' && c.text) {
      const zh = el('div', 'article');
      zh.lang = 'zh-CN';
      paragraphs(zh, c.text);
      d.append(zh);
    }
    if (typeof c.english === 'string' && c.english) {
      const box = el('div', 'english');
      box.append(el('p', 'en-label', typeof c.english_label === 'string' ? c.english_label : t('english')));
      const text = el('div');
      text.lang = 'en';
      paragraphs(text, c.english);
      box.append(text);
      d.append(box);
    }
    return d;
  }

  function renderBlocks(parent, blocks) {
    let list = null; // consecutive "li" blocks share one <ul>
    for (const block of blocks) {
      if (!block || typeof block !== 'object') continue;
      if (block.kind === 'cite') {
        // A citation is a block of its own: an expandable article.
        list = null;
        if (block.cite && typeof block.cite === 'object') parent.append(renderCite(block.cite));
        continue;
      }
      const spans = Array.isArray(block.spans) ? block.spans.filter((s) => s && typeof s === 'object') : [];
      let box;
      if (block.kind === 'li') {
        if (!list) { list = el('ul'); parent.append(list); }
        box = el('li');
        list.append(box);
      } else {
        list = null;
        box = el(block.kind === 'quote' ? 'blockquote' : 'p');
        parent.append(box);
      }
      for (const s of spans) box.append(renderSpan(s));
    }
  }

  function renderButton(b) {
    if (!b || typeof b.text !== 'string') return null;
    if (b.kind === 'url') {
      const href = safeURL(b.data);
      if (!href) return null;
      const a = externalLink('btn url', href);
      a.textContent = b.text;
      return a;
    }
    if (b.kind !== 'callback' && b.kind !== 'code') return null;
    const btn = el('button', 'btn', b.text);
    btn.type = 'button';
    btn.addEventListener('click', () => (b.kind === 'code' ? enterCodeMode() : press(btn, b.data)));
    return btn;
  }

  function renderButtons(rows) {
    if (!Array.isArray(rows)) return null;
    const box = el('div', 'buttons');
    for (const row of rows) {
      if (!Array.isArray(row)) continue;
      const line = el('div', 'row');
      for (const b of row) { const n = renderButton(b); if (n) line.append(n); }
      if (line.childElementCount) box.append(line);
    }
    return box.childElementCount ? box : null;
  }

  function findMessage(id) {
    if (typeof id !== 'string' || !id) return null;
    for (const li of log.children) if (li.dataset.id === id) return li;
    return null;
  }

  function showReply(msg) {
    const li = el('li', 'msg bot');
    if (typeof msg.id === 'string') li.dataset.id = msg.id;
    const bubble = el('div', 'bubble');
    bubble.append(uiText('span', 'vh', 'bot'));
    renderBlocks(bubble, Array.isArray(msg.blocks) ? msg.blocks : []);
    li.append(bubble);
    const buttons = renderButtons(msg.buttons);
    if (buttons) li.append(buttons);
    // A repeated id is treated like replaces, so a resent reply is not shown twice.
    const old = findMessage(msg.replaces) || findMessage(msg.id);
    if (old) {
      const hadFocus = old.contains(document.activeElement);
      old.replaceWith(li);
      if (hadFocus) input.focus();
    } else {
      log.append(li);
      reveal(li);
    }
  }

  function showUser(text) {
    const li = el('li', 'msg user');
    const bubble = el('div', 'bubble');
    bubble.append(uiText('span', 'vh', 'you'), el('p', null, text));
    li.append(bubble);
    log.append(li);
    reveal(li);
    return li;
  }

  function setPending(li, on) {
    li.classList.toggle('pending', on);
    const note = li.querySelector('.note');
    if (on && !note) li.append(uiText('p', 'note', 'pending'));
    if (!on && note) note.remove();
  }

  // ---- status line and typing indicator --------------------------------------

  function setStatus(text, key, ms) {
    clearTimeout(statusTimer);
    statusKey = key || null;
    statusEl.textContent = text || '';
    // Good news should not look like a warning.
    if (key === 'reconnected') statusEl.dataset.tone = 'ok';
    else delete statusEl.dataset.tone;
    if (ms) statusTimer = setTimeout(() => setStatus(''), ms);
  }

  function showTyping() {
    typingEl.classList.add('on');
    typingText.textContent = t('typing');
    clearTimeout(typingTimer);
    typingTimer = setTimeout(hideTyping, TYPING_TIMEOUT);
    reveal(null);
  }

  function hideTyping() {
    clearTimeout(typingTimer);
    typingEl.classList.remove('on');
    typingText.textContent = '';
  }

  // ---- connection --------------------------------------------------------------

  function newID() { return `${Date.now()}.${idRand()}`; }

  // send gives a message an id and puts it in the outbox; it goes out now
  // if the socket is ready, else on the next welcome. It stays in the
  // outbox until the server acks it, and is sent again after a reconnect.
  function send(msg, li) {
    msg.id = newID();
    const item = { msg, li, sent: false };
    outbox.push(item);
    if (ready && ws && ws.readyState === WebSocket.OPEN) {
      transmit(item);
      showTyping();
    } else {
      // send() on a closing socket drops data silently, so anything not
      // surely going out now waits for the next welcome.
      if (li) setPending(li, true);
      if (idle) { idle = false; connect(); }
    }
  }

  function transmit(item) {
    ws.send(JSON.stringify(item.msg));
    item.sent = true;
    if (item.li) setPending(item.li, false);
  }

  // fits: the frame of text is within what the server reads.
  function fits(text) {
    return encoder.encode(JSON.stringify({ type: 'text', id: newID(), text })).length <= MAX_FRAME;
  }

  function flush() {
    if (!outbox.length) return;
    for (const item of outbox) transmit(item);
    showTyping();
  }

  function acked(id) {
    const i = outbox.findIndex((item) => item.msg.id === id);
    if (i >= 0) outbox.splice(i, 1);
    if (!outbox.some((item) => item.sent)) hideTyping();
  }

  function connect() {
    clearTimeout(reconnectTimer);
    reconnectTimer = 0;
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    let sock;
    try {
      sock = new WebSocket(`${scheme}//${location.host}/ws`);
    } catch (_) {
      scheduleReconnect();
      return;
    }
    ws = sock;
    sock.addEventListener('open', () => sock.send(JSON.stringify({ type: 'hello', lang })));
    sock.addEventListener('message', (e) => { if (ws === sock) onFrame(e.data); });
    // "error" is always followed by "close", so only close is handled.
    sock.addEventListener('close', (e) => {
      if (ws !== sock) return;
      ws = null;
      ready = false;
      hideTyping();
      if (e.code === CLOSE_ENDED) {
        // A new session, at once and without alarm: the old one is gone.
        attempt = 0;
        connect();
        return;
      }
      if (e.code === CLOSE_IDLE && !outbox.length) {
        idle = true;
        setStatus(t('idle'), 'idle');
        return;
      }
      if (e.code === CLOSE_GOING_AWAY) attempt = 0; // a restart: another server is there
      setStatus(t(everReady ? 'disconnected' : 'offline'), everReady ? 'disconnected' : 'offline');
      scheduleReconnect();
    });
  }

  // 1 s, 2 s, 4 s … 30 s, each ±25 %, so many pages cut off by one server
  // restart do not all come back in the same instant.
  function scheduleReconnect() {
    const base = Math.min(MAX_BACKOFF, 1000 * 2 ** attempt);
    attempt += 1;
    reconnectTimer = setTimeout(connect, base * (0.75 + Math.random() * 0.5));
  }

  // Phones suspend background tabs and drop sockets; do not make the user wait
  // out a long backoff once the page is visible or the network is back.
  function reconnectNow() {
    if (!ws && (reconnectTimer || idle)) { idle = false; connect(); }
  }

  function onFrame(data) {
    let m;
    try { m = JSON.parse(data); } catch (_) { return; }
    if (!m || typeof m !== 'object') return;
    switch (m.type) {
      case 'welcome':
        ready = true;
        attempt = 0;
        if ((m.lang === 'zh' || m.lang === 'en') && m.lang !== lang) setLang(m.lang, false);
        if (everReady && statusKey === 'disconnected') setStatus(t('reconnected'), 'reconnected', 3000);
        else if (statusKey) setStatus('');
        idle = false;
        everReady = true;
        flush();
        break;
      case 'reply':
        hideTyping();
        showReply(m);
        break;
      case 'ack':
        if (typeof m.for === 'string') acked(m.for);
        break;
      case 'lang':
        // The conversation switched language (a language button): follow.
        if ((m.lang === 'zh' || m.lang === 'en') && m.lang !== lang) setLang(m.lang, true);
        break;
      case 'typing':
        showTyping();
        break;
      case 'notice':
        // A notice (rate limit, too long) means no reply is coming for now.
        hideTyping();
        if (typeof m.text === 'string') setStatus(m.text, null, NOTICE_MS);
        break;
      default:
        break; // unknown types are ignored so the server can add new ones
    }
  }

  // ---- input -------------------------------------------------------------------

  function enterCodeMode() {
    codeMode = true;
    input.setAttribute('inputmode', 'numeric');
    input.setAttribute('autocomplete', 'one-time-code'); // lets phones offer the SMS code
    input.placeholder = t('codePlaceholder');
    input.focus();
  }

  function leaveCodeMode() {
    if (!codeMode) return;
    codeMode = false;
    input.removeAttribute('inputmode');
    input.removeAttribute('autocomplete');
    input.placeholder = t('placeholder');
  }

  function press(btn, data) {
    if (typeof data !== 'string') return;
    // A double tap on a phone would otherwise run the same step twice.
    const now = Date.now();
    if (now - (lastPress.get(btn) || 0) < 1000) return;
    lastPress.set(btn, now);
    const li = btn.closest('li.msg');
    if (li) for (const b of li.querySelectorAll('.btn.chosen')) b.classList.remove('chosen');
    btn.classList.add('chosen');
    // msg: the message whose button this is, which the answer may replace.
    send({ type: 'button', data, msg: li && li.dataset.id ? li.dataset.id : undefined });
    input.focus();
  }

  function autoGrow() {
    input.style.height = 'auto';
    input.style.height = `${input.scrollHeight + input.offsetHeight - input.clientHeight}px`;
  }

  function submit() {
    const text = input.value.trim();
    if (text && !fits(text)) {
      setStatus(t('tooLong'), 'tooLong', NOTICE_MS);
      input.focus();
      return;
    }
    if (text) {
      send({ type: 'text', text }, showUser(text));
      input.value = '';
      autoGrow();
      leaveCodeMode();
    }
    input.focus();
  }

  form.addEventListener('submit', (e) => { e.preventDefault(); submit(); });
  input.addEventListener('keydown', (e) => {
    // While a Chinese IME is composing, Enter picks the candidate; it must not send.
    if (e.key !== 'Enter' || e.shiftKey || e.isComposing || e.keyCode === 229) return;
    e.preventDefault();
    submit();
  });
  input.addEventListener('input', autoGrow);
  // The toggle switches the page and the conversation: the server keeps
  // the choice (as the bot's own language buttons do) and confirms it.
  for (const b of document.querySelectorAll('.langs button')) {
    b.addEventListener('click', () => {
      const next = b.dataset.lang;
      if (next === lang) return;
      setLang(next, true);
      send({ type: 'button', data: `lang:${next}` });
    });
  }
  input.addEventListener('focus', reconnectNow);
  window.addEventListener('online', reconnectNow);
  document.addEventListener('visibilitychange', () => { if (!document.hidden) reconnectNow(); });

  setLang(lang, false);
  connect();
})();
