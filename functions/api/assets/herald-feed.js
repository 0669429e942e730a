/*!
 * <herald-feed>: Herald's in-app feed widget. One dependency-free script, served by the API at
 * /widget/herald-feed.js.
 *
 *   <script src="https://herald.example.com/widget/herald-feed.js" defer></script>
 *   <herald-feed api-base="https://herald.example.com" org-id="..." token="hft_..."></herald-feed>
 *
 * Attributes: api-base (default: this page's origin), org-id, token (a feed token your backend
 * mints with POST /api/v1/orgs/{orgId}/feeds/tokens), socket-url (optional: the WebSocket API
 * URL on AWS; default: {api-base}/api/v1/orgs/{orgId}/feed/socket), limit (items shown, 20),
 * theme (light | dark; default: the user's `prefers-color-scheme`).
 * Setting `token` again (e.g. after `herald-feed:token-expired`) reconnects.
 *
 * Events (bubbling, composed): herald-feed:update {badge, seq}, herald-feed:connection
 * {state}, herald-feed:token-expired, herald-feed:item-click {item} (cancelable: cancel it to
 * keep the widget from following item.url).
 *
 * Theming: CSS variables on the element or any ancestor: --herald-accent, --herald-bg,
 * --herald-fg, --herald-muted, --herald-border, --herald-badge-bg, --herald-badge-fg,
 * --herald-radius, --herald-font, --herald-width, --herald-shadow, --herald-hover. The defaults
 * follow `prefers-color-scheme` (a light and a dark palette); theme="light" or theme="dark" fixes
 * one. The panel is at most the viewport's width less 8px a side and stays on screen.
 *
 * Protocol (docs/feeds.md): every socket message carries the user's seq, one more per change.
 * A message exactly one above what we hold is applied; a larger jump, a bulk "badge" message or
 * a reconnect makes the widget fetch GET .../feed?sinceSeq=<held seq> to catch up.
 */
(() => {
  'use strict';
  if (customElements.get('herald-feed')) return;

  // Every colour goes through a private property: a light palette, a dark one under
  // `prefers-color-scheme: dark` (or theme="dark"), and the page's --herald-* variables over both.
  const STYLE = `
    :host { position: relative; display: inline-block; font-family: var(--herald-font, system-ui, sans-serif);
      --_accent: var(--herald-accent, #4f46e5); --_bg: var(--herald-bg, #fff); --_fg: var(--herald-fg, #1f2328);
      --_muted: var(--herald-muted, #656d76); --_border: var(--herald-border, #d0d7de);
      --_badge-bg: var(--herald-badge-bg, var(--_accent)); --_badge-fg: var(--herald-badge-fg, #fff);
      --_shadow: var(--herald-shadow, 0 8px 24px rgba(0,0,0,.15)); --_hover: var(--herald-hover, rgba(127,127,127,.08));
      color: var(--_fg); color-scheme: light; }
    @media (prefers-color-scheme: dark) {
      :host(:not([theme="light"])) { --_accent: var(--herald-accent, #a5b4fc); --_bg: var(--herald-bg, #161b22);
        --_fg: var(--herald-fg, #e6edf3); --_muted: var(--herald-muted, #9ea7b3); --_border: var(--herald-border, #3d444d);
        --_badge-fg: var(--herald-badge-fg, #0d1117); --_shadow: var(--herald-shadow, 0 8px 24px rgba(1,4,9,.6));
        --_hover: var(--herald-hover, rgba(177,186,196,.12)); color-scheme: dark; }
    }
    :host([theme="dark"]) { --_accent: var(--herald-accent, #a5b4fc); --_bg: var(--herald-bg, #161b22);
      --_fg: var(--herald-fg, #e6edf3); --_muted: var(--herald-muted, #9ea7b3); --_border: var(--herald-border, #3d444d);
      --_badge-fg: var(--herald-badge-fg, #0d1117); --_shadow: var(--herald-shadow, 0 8px 24px rgba(1,4,9,.6));
      --_hover: var(--herald-hover, rgba(177,186,196,.12)); color-scheme: dark; }
    button { font: inherit; color: inherit; }
    .bell { position: relative; display: inline-flex; align-items: center; justify-content: center; width: 2.5rem;
      height: 2.5rem; border: 1px solid var(--_border); border-radius: var(--herald-radius, 0.5rem);
      background: var(--_bg); cursor: pointer; }
    .bell:focus-visible, .item:focus-visible, .all:focus-visible { outline: 2px solid var(--_accent); outline-offset: 2px; }
    .bell svg { width: 1.25rem; height: 1.25rem; }
    .badge { position: absolute; top: -0.4rem; right: -0.4rem; min-width: 1.25rem; height: 1.25rem; padding: 0 0.3rem;
      box-sizing: border-box; border-radius: 999px; background: var(--_badge-bg);
      color: var(--_badge-fg); font-size: 0.75rem; font-weight: 600; line-height: 1.25rem; text-align: center; }
    .badge[hidden] { display: none; }
    /* Never wider than the screen less 8px a side, never taller than what is left below the bell;
       placing it on open (_place) keeps it on screen wherever the bell sits. */
    .panel { position: absolute; right: 0; top: calc(100% + 0.5rem); z-index: 1000; box-sizing: border-box;
      width: min(var(--herald-width, 22rem), calc(100vw - 16px)); max-height: min(28rem, calc(100vh - 5rem));
      display: flex; flex-direction: column; background: var(--_bg); color: var(--_fg);
      border: 1px solid var(--_border); border-radius: var(--herald-radius, 0.5rem);
      box-shadow: var(--_shadow); overflow: hidden; }
    .panel[hidden] { display: none; }
    .head { display: flex; align-items: center; justify-content: space-between; gap: 0.5rem; padding: 0.6rem 0.8rem;
      border-bottom: 1px solid var(--_border); }
    .head h2 { margin: 0; font-size: 0.95rem; }
    .all { border: 0; background: none; color: var(--_accent); cursor: pointer; font-size: 0.8rem; padding: 0.2rem; }
    .all:disabled { color: var(--_muted); cursor: default; }
    ul { list-style: none; margin: 0; padding: 0; overflow-y: auto; min-height: 0; }
    .item { display: grid; grid-template-columns: 0.6rem minmax(0, 1fr); gap: 0.5rem; width: 100%; text-align: left;
      padding: 0.6rem 0.8rem; border: 0; border-bottom: 1px solid var(--_border); background: none; cursor: pointer; }
    .item:hover { background: var(--_hover); }
    .dot { width: 0.5rem; height: 0.5rem; margin-top: 0.35rem; border-radius: 50%; background: var(--_accent); }
    .read .dot { visibility: hidden; }
    .title { font-weight: 600; font-size: 0.9rem; overflow-wrap: anywhere; }
    .read .title { font-weight: 400; }
    .body { font-size: 0.85rem; color: var(--_muted); margin-top: 0.15rem; white-space: pre-line; overflow-wrap: anywhere; }
    time { display: block; font-size: 0.75rem; color: var(--_muted); margin-top: 0.25rem; }
    .empty, .status { padding: 1rem 0.8rem; font-size: 0.85rem; color: var(--_muted); }
    .sr { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
  `;
  const BELL = '<svg viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2" aria-hidden="true"><path d="M18 8a6 6 0 0 0-12 0c0 7-3 9-3 9h18s-3-2-3-9"/><path d="M13.7 21a2 2 0 0 1-3.4 0"/></svg>';
  const PING_EVERY = 25000;
  const PONG_WITHIN = 10000;
  const MAX_BACKOFF = 30000;
  let instances = 0;

  class HeraldFeed extends HTMLElement {
    static get observedAttributes() { return ['token', 'org-id', 'api-base', 'socket-url']; }

    constructor() {
      super();
      this._uid = `herald-feed-${++instances}`;
      this._items = new Map();
      this._badge = { unread: 0, unseen: 0 };
      this._seq = null;
      this._ws = null;
      this._attempt = 0;
      this._timers = {};
      this._busy = Promise.resolve();
      this._open = false;
      this._state = 'idle';
      const root = this.attachShadow({ mode: 'open' });
      root.innerHTML = `<style>${STYLE}</style>
        <button class="bell" part="bell" type="button" aria-haspopup="true" aria-expanded="false" aria-controls="${this._uid}-panel">
          ${BELL}<span class="badge" part="badge" aria-hidden="true" hidden>0</span>
        </button>
        <span class="sr" role="status" aria-live="polite"></span>
        <div class="panel" part="panel" id="${this._uid}-panel" role="region" aria-label="Notifications" hidden>
          <div class="head"><h2>Notifications</h2><button class="all" type="button">Mark all read</button></div>
          <ul role="list"></ul>
        </div>`;
      this._el = {
        bell: root.querySelector('.bell'), badge: root.querySelector('.badge'), live: root.querySelector('.sr'),
        panel: root.querySelector('.panel'), list: root.querySelector('ul'), all: root.querySelector('.all'),
      };
      this._el.bell.addEventListener('click', () => this.toggle());
      this._el.all.addEventListener('click', () => this.markAllRead());
      this._el.list.addEventListener('click', (e) => {
        const li = e.target.closest('[data-id]');
        if (li) this._activate(li.dataset.id);
      });
      root.addEventListener('keydown', (e) => this._onKey(e));
      this._onResize = () => { if (this._open) this._place(); };
      this._outside = (e) => { if (this._open && !e.composedPath().includes(this)) this.close(false); };
      this._render();
    }

    // ---- public API -------------------------------------------------------------------------
    /** The current counts: {unread, unseen}. */
    get badge() { return { ...this._badge }; }
    /** The user's sequence number the widget is at (null before the first load). */
    get seq() { return this._seq; }
    /** 'idle' | 'connecting' | 'open' | 'closed' | 'unauthorized'. */
    get connectionState() { return this._state; }
    /** The items held, newest first. */
    get items() { return this._sorted(); }

    toggle() { return this._open ? this.close() : this.open(); }

    open() {
      this._open = true;
      this._el.panel.hidden = false;
      this._place();
      this._el.bell.setAttribute('aria-expanded', 'true');
      document.addEventListener('click', this._outside, true);
      window.addEventListener('resize', this._onResize);
      const first = this._el.list.querySelector('.item');
      if (first) first.focus();
      if (this._badge.unseen > 0) this._post('/feed/seen-all').then((r) => r && this._afterBulk(r)).catch(() => {});
    }

    close(focusBell = true) {
      this._open = false;
      this._el.panel.hidden = true;
      this._el.bell.setAttribute('aria-expanded', 'false');
      document.removeEventListener('click', this._outside, true);
      window.removeEventListener('resize', this._onResize);
      if (focusBell) this._el.bell.focus();
    }

    async markRead(id) {
      const item = this._items.get(id);
      if (!item || item.readAt) return;
      const r = await this._post(`/feed/items/${encodeURIComponent(id)}/read`);
      if (r) this._applyChange(r.seq, r.item, r.badge);
    }

    async markAllRead() {
      const r = await this._post('/feed/read-all');
      if (r) await this._afterBulk(r);
    }

    // ---- lifecycle --------------------------------------------------------------------------
    connectedCallback() { this._start(); }

    disconnectedCallback() { this._stop(); this.close(false); }

    attributeChangedCallback(name, before, after) {
      if (before !== after && this.isConnected) { this._stop(); this._start(); }
    }

    get _base() {
      const base = (this.getAttribute('api-base') || window.location.origin).replace(/\/+$/, '');
      return `${base}/api/v1/orgs/${encodeURIComponent(this.getAttribute('org-id') || '')}`;
    }

    _start() {
      if (!this.getAttribute('token') || !this.getAttribute('org-id')) return;
      this._stopped = false;
      this._load().catch(() => {});
      this._connect();
    }

    _stop() {
      this._stopped = true;
      Object.values(this._timers).forEach(clearTimeout);
      this._timers = {};
      // 1000: a normal close, which the server echoes (a bare close() is 1005, no status).
      if (this._ws) { this._ws.onclose = null; this._ws.close(1000); this._ws = null; }
    }

    // ---- HTTP -------------------------------------------------------------------------------
    async _fetch(path, init = {}) {
      const res = await fetch(this._base + path, {
        ...init, headers: { authorization: `Bearer ${this.getAttribute('token')}`, ...(init.headers || {}) },
      });
      if (res.status === 401) { this._unauthorized(); return null; }
      if (!res.ok) throw new Error(`herald-feed: ${init.method || 'GET'} ${path}: ${res.status}`);
      return res.json();
    }

    _post(path) { return this._fetch(path, { method: 'POST' }); }

    /** Serialises loads and catch-ups, so they apply in order. */
    _serial(fn) {
      this._busy = this._busy.then(fn, fn).catch(() => {});
      return this._busy;
    }

    _load() {
      return this._serial(async () => {
        const limit = Number(this.getAttribute('limit')) || 20;
        const page = await this._fetch(`/feed?limit=${limit}`);
        if (!page) return;
        this._items.clear();
        page.items.forEach((i) => this._items.set(i.id, i));
        this._badge = page.badge;
        this._seq = page.seq;
        this._render();
      });
    }

    /** Fetches every change after the seq we hold. */
    _catchUp() {
      return this._serial(async () => {
        if (this._seq === null) return;
        let cursor = null;
        do {
          const q = `/feed?sinceSeq=${this._seq}&limit=100${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
          const page = await this._fetch(q);
          if (!page) return;
          page.items.forEach((i) => this._upsert(i));
          this._badge = page.badge;
          cursor = page.nextCursor;
          if (!cursor) this._seq = Math.max(this._seq, page.seq);
        } while (cursor);
        this._render();
      });
    }

    async _afterBulk(r) {
      if (this._seq !== null && r.seq > this._seq) await this._catchUp();
    }

    // ---- socket -----------------------------------------------------------------------------
    _socketUrl() {
      const token = encodeURIComponent(this.getAttribute('token'));
      const custom = this.getAttribute('socket-url');
      const url = custom || `${this._base}/feed/socket`.replace(/^http/, 'ws');
      return `${url}${url.includes('?') ? '&' : '?'}token=${token}`;
    }

    _setState(state) {
      this._state = state;
      this.setAttribute('data-connection', state);
      this.dispatchEvent(new CustomEvent('herald-feed:connection', { detail: { state }, bubbles: true, composed: true }));
    }

    _connect() {
      if (this._stopped) return;
      this._setState('connecting');
      let ws;
      try { ws = new WebSocket(this._socketUrl()); } catch (_) { this._reconnect(); return; }
      this._ws = ws;
      ws.onopen = () => {
        this._attempt = 0;
        this._setState('open');
        this._heartbeat();
        // Whatever happened while we were away (a reconnect), fetch it; on AWS the socket
        // sends nothing until asked, so ask for the badge too.
        ws.send('{"type":"hello"}');
        if (this._seq !== null) this._catchUp();
      };
      ws.onmessage = (e) => {
        clearTimeout(this._timers.pong);
        let m;
        try { m = JSON.parse(e.data); } catch (_) { return; }
        this._onMessage(m);
      };
      ws.onclose = (e) => {
        clearTimeout(this._timers.ping); clearTimeout(this._timers.pong);
        this._ws = null;
        if (e.code === 4401) { this._unauthorized(); return; }
        this._setState('closed');
        this._reconnect();
      };
      ws.onerror = () => {};
    }

    _heartbeat() {
      clearTimeout(this._timers.ping);
      this._timers.ping = setTimeout(() => {
        const ws = this._ws;
        if (!ws || ws.readyState !== WebSocket.OPEN) return;
        ws.send('{"type":"ping"}');
        // No answer in time: the connection is dead even if the browser has not noticed.
        this._timers.pong = setTimeout(() => ws.close(), PONG_WITHIN);
        this._heartbeat();
      }, PING_EVERY);
    }

    _reconnect() {
      if (this._stopped) return;
      const delay = Math.min(MAX_BACKOFF, 1000 * 2 ** this._attempt) * (0.5 + Math.random() / 2);
      this._attempt = Math.min(this._attempt + 1, 10);
      clearTimeout(this._timers.reconnect);
      this._timers.reconnect = setTimeout(() => this._connect(), delay);
    }

    _unauthorized() {
      this._stop();
      this._setState('unauthorized');
      this.dispatchEvent(new CustomEvent('herald-feed:token-expired', { bubbles: true, composed: true }));
    }

    _onMessage(m) {
      if (m.type === 'pong') return;
      if (typeof m.seq !== 'number') return;
      // Wait for the first page; what it misses, catch-up brings.
      this._serial(() => {}).then(() => {
        if (this._seq === null) return;
        // The feed was reset (the user was deleted and came back): start over.
        if (!m.item && m.seq < this._seq) { this._load(); return; }
        if (m.seq <= this._seq) return;
        if (m.item && m.seq === this._seq + 1) this._applyChange(m.seq, m.item, m.badge);
        else this._catchUp();
      });
    }

    _applyChange(seq, item, badge) {
      if (this._seq !== null && seq <= this._seq) return;
      if (this._seq !== null && seq > this._seq + 1) { this._catchUp(); return; }
      this._upsert(item);
      this._badge = badge;
      this._seq = seq;
      this._render();
    }

    _upsert(item) {
      if (item.archivedAt) this._items.delete(item.id);
      else this._items.set(item.id, item);
    }

    // ---- view -------------------------------------------------------------------------------
    /** Keeps the open panel inside the viewport (8px from each edge): it hangs from the bell's
     *  right edge, and moves left or right when the bell is too close to a side of the screen. */
    _place() {
      const panel = this._el.panel;
      const margin = 8;
      panel.style.right = '';
      panel.style.width = '';
      panel.style.maxHeight = '';
      const vw = document.documentElement.clientWidth || window.innerWidth;
      const vh = window.innerHeight;
      let r = panel.getBoundingClientRect();
      if (r.width > vw - 2 * margin) {
        panel.style.width = `${vw - 2 * margin}px`;
        r = panel.getBoundingClientRect();
      }
      let shift = 0;
      if (r.right > vw - margin) shift = vw - margin - r.right;
      if (r.left + shift < margin) shift = margin - r.left;
      if (shift) panel.style.right = `${-shift}px`;
      const room = vh - r.top - margin;
      if (room < r.height) panel.style.maxHeight = `${Math.max(160, room)}px`;
    }

    _sorted() {
      // Item ids are UUIDv7: their text order is their time order.
      return [...this._items.values()].sort((a, b) => (a.id < b.id ? 1 : -1));
    }

    _render() {
      const { unread } = this._badge;
      const badge = this._el.badge;
      badge.hidden = unread === 0;
      badge.textContent = unread > 99 ? '99+' : String(unread);
      const label = unread === 0 ? 'Notifications' : `Notifications, ${unread} unread`;
      this._el.bell.setAttribute('aria-label', label);
      const said = unread === 0 ? 'No unread notifications' : `${unread} unread notification${unread === 1 ? '' : 's'}`;
      if (this._el.live.textContent !== said) this._el.live.textContent = said;
      this._el.all.disabled = unread === 0;

      const focused = this.shadowRoot.activeElement && this.shadowRoot.activeElement.closest('[data-id]');
      const focusId = focused && focused.dataset.id;
      const list = this._el.list;
      list.textContent = '';
      const items = this._sorted().slice(0, Number(this.getAttribute('limit')) || 20);
      if (items.length === 0) {
        const li = document.createElement('li');
        li.className = 'empty';
        li.textContent = 'No notifications yet';
        list.append(li);
      }
      items.forEach((item, n) => {
        const li = document.createElement('li');
        const b = document.createElement('button');
        b.type = 'button';
        b.className = `item${item.readAt ? ' read' : ''}`;
        b.setAttribute('part', 'item');
        b.dataset.id = item.id;
        b.tabIndex = (focusId ? item.id === focusId : n === 0) ? 0 : -1;
        const dot = document.createElement('span');
        dot.className = 'dot';
        dot.setAttribute('aria-hidden', 'true');
        const text = document.createElement('span');
        const title = document.createElement('span');
        title.className = 'title';
        title.textContent = item.title;
        text.append(title);
        if (item.readAt === null || item.readAt === undefined) {
          const sr = document.createElement('span');
          sr.className = 'sr';
          sr.textContent = ' (unread)';
          text.append(sr);
        }
        if (item.body) {
          const body = document.createElement('div');
          body.className = 'body';
          body.textContent = item.body;
          text.append(body);
        }
        const time = document.createElement('time');
        time.dateTime = item.createdAt;
        time.title = new Date(item.createdAt).toLocaleString();
        time.textContent = ago(item.createdAt);
        text.append(time);
        b.append(dot, text);
        li.append(b);
        list.append(li);
        if (item.id === focusId) queueMicrotask(() => b.focus());
      });
      this.dispatchEvent(new CustomEvent('herald-feed:update', { detail: { badge: this.badge, seq: this._seq }, bubbles: true, composed: true }));
    }

    _activate(id) {
      const item = this._items.get(id);
      if (!item) return;
      this.markRead(id).catch(() => {});
      const go = this.dispatchEvent(new CustomEvent('herald-feed:item-click', { detail: { item }, bubbles: true, composed: true, cancelable: true }));
      if (go && item.url && /^https?:/i.test(item.url)) window.location.assign(item.url);
    }

    _onKey(e) {
      const active = this.shadowRoot.activeElement;
      if (e.key === 'Escape' && this._open) { e.preventDefault(); this.close(); return; }
      if (!this._open) {
        if (e.key === 'ArrowDown' && active === this._el.bell) { e.preventDefault(); this.open(); }
        return;
      }
      const buttons = [...this._el.list.querySelectorAll('.item')];
      if (!buttons.length) return;
      const at = buttons.indexOf(active);
      let next;
      switch (e.key) {
        case 'ArrowDown': next = at < 0 ? 0 : Math.min(at + 1, buttons.length - 1); break;
        case 'ArrowUp': next = at < 0 ? buttons.length - 1 : Math.max(at - 1, 0); break;
        case 'Home': next = 0; break;
        case 'End': next = buttons.length - 1; break;
        default: return;
      }
      e.preventDefault();
      buttons.forEach((b, i) => { b.tabIndex = i === next ? 0 : -1; });
      buttons[next].focus();
    }
  }

  function ago(iso) {
    const s = Math.round((Date.parse(iso) - Date.now()) / 1000);
    const rtf = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });
    const units = [['year', 31536000], ['month', 2592000], ['week', 604800], ['day', 86400], ['hour', 3600], ['minute', 60]];
    for (const [unit, secs] of units) if (Math.abs(s) >= secs) return rtf.format(Math.round(s / secs), unit);
    return rtf.format(0, 'second');
  }

  customElements.define('herald-feed', HeraldFeed);
})();
