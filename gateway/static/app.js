// seckill storefront: plain JavaScript, no dependencies, no build step.
//
// - Sales come from GET /api/v1/activities, refreshed every few seconds with jittered,
//   doubling backoff on errors, and paused while the tab is hidden.
// - Countdowns tick locally (corrected by the server's Date header) and never call the API.
// - "Buy now" sends POST /api/v1/seckill once, then polls GET /api/v1/seckill/result with a
//   growing delay until the order is confirmed or refused.
// - When a sale requires admission (activity.admission.required), the page first gets an
//   admission token (POST /api/v1/seckill/admission) and waits for the turn it names; when the
//   sale asks for proof of work (admission.difficulty > 0) it solves the challenge with Web
//   Crypto SHA-256 in small batches, ahead of time (during the countdown) so the click is fast.
// - The login token lives in sessionStorage (gone when the tab closes).
// - Every refusal code of the API has a sentence a customer can act on.
'use strict';

(() => {
  const API = '/api/v1';
  const POLL_MS = 3000;          // stock refresh while everything is fine
  const POLL_MAX_MS = 30000;     // ceiling of the error backoff
  const RESULT_DELAYS = [250, 400, 600, 900, 1300, 2000, 3000]; // then 3 s each
  const RESULT_GIVE_UP_MS = 90000;
  const SESSION_KEY = 'seckill.session';

  const $ = (sel, root = document) => root.querySelector(sel);
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const jitter = (ms) => Math.round(ms * (0.8 + Math.random() * 0.4));

  // ---- refusal codes -> words ------------------------------------------------------------

  const MESSAGES = {
    SOLD_OUT: () => 'Sold out: every item in this sale has been claimed.',
    LIMIT_EXCEEDED: (a) =>
      `Purchase limit reached: you already hold the maximum for this sale${a && a.per_user_limit ? ` (${a.per_user_limit} per customer)` : ''}.`,
    NOT_STARTED: () => 'This sale has not started yet. Please try again when the countdown ends.',
    ENDED: () => 'This sale has ended.',
    NO_ACTIVITY: () => 'This sale is not available (it may not be open for orders yet, or it was removed).',
    INVALID_ARGUMENT: (a, m) => `The shop could not accept that request: ${m}`,
    UNAUTHORIZED: () => 'Your session has expired. Please log in again.',
    RATE_LIMITED: () => 'Too many requests right now. Please wait a few seconds and try again.',
    USERNAME_TAKEN: () => 'That username is already taken. Pick another one, or log in.',
    INVALID_CREDENTIALS: () => 'Wrong username or password.',
    ORDER_NOT_PENDING: (a, m) => `This order can no longer be changed: ${m}`,
    FORBIDDEN: () => 'You are not allowed to do that.',
    NOT_FOUND: (a, m) => `Not found: ${m}`,
    PAYLOAD_TOO_LARGE: () => 'That request was too large.',
    TIMEOUT: () => 'The shop is very busy and did not answer in time. Please try again.',
    SERVICE_UNAVAILABLE: () => 'The shop is temporarily unavailable. Please try again in a moment.',
    INTERNAL: () => 'Something went wrong on our side. Please try again in a moment.',
    NETWORK: () => 'Cannot reach the shop. Check your connection and try again.',
    OVERLOADED: () => 'The shop is very busy right now. Please try again in a moment.',
    REQUEST_TIMEOUT: () => 'The request took too long to arrive. Please try again.',
    ADMISSION_REQUIRED: () => 'This sale needs an entry ticket; please try again.',
    ADMISSION_INVALID: () => 'Your entry ticket for this sale is not valid; please try again.',
    ADMISSION_EXPIRED: () => 'Your entry ticket for this sale expired; please try again.',
    ADMISSION_USED: () => 'That entry ticket was already used; please try again.',
    TOO_EARLY: () => 'It is not your turn yet; please try again in a moment.',
    POW_REQUIRED: () => 'Your entry ticket could not be prepared; please try again.',
    POW_INVALID: () => 'Your entry ticket could not be prepared; please try again.',
  };

  /** A sentence for a failed API reply; `a` is the activity concerned, if any. */
  function explain(res, a) {
    const f = MESSAGES[res.error];
    if (f) return f(a, res.message || '');
    if (res.status >= 500) {
      return `The shop is overloaded right now (error ${res.status}). Please try again in a moment.`;
    }
    return res.message || `Request failed (HTTP ${res.status}).`;
  }

  // ---- session ---------------------------------------------------------------------------

  let session = loadSession();

  function loadSession() {
    try {
      const s = JSON.parse(sessionStorage.getItem(SESSION_KEY) || 'null');
      if (s && s.token && (!s.expires_at || Date.parse(s.expires_at) > Date.now())) return s;
    } catch (_) { /* unreadable: start logged out */ }
    sessionStorage.removeItem(SESSION_KEY);
    return null;
  }

  function setSession(s) {
    session = s;
    if (s) sessionStorage.setItem(SESSION_KEY, JSON.stringify(s));
    else sessionStorage.removeItem(SESSION_KEY);
    renderSession();
  }

  // ---- HTTP ------------------------------------------------------------------------------

  let clockOffset = 0; // server time - local time, when the difference is worth correcting

  /** Calls the API; resolves to {ok, status, error, message, data, retryAfter}, never throws. */
  async function api(method, path, body) {
    const headers = { Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (session) headers.Authorization = `Bearer ${session.token}`;
    const sent = Date.now();
    let resp;
    try {
      resp = await fetch(API + path, {
        method, headers, body: body === undefined ? undefined : JSON.stringify(body),
        cache: 'no-store', credentials: 'same-origin',
      });
    } catch (_) {
      return { ok: false, status: 0, error: 'NETWORK', message: '' };
    }
    noteServerClock(resp, sent);
    let env = null;
    try { env = await resp.json(); } catch (_) { /* not JSON: a proxy page, say */ }
    const res = {
      ok: resp.ok,
      status: resp.status,
      error: env && env.error ? env.error : (resp.ok ? null : `HTTP_${resp.status}`),
      message: env && typeof env.message === 'string' ? env.message : '',
      data: env ? env.data : null,
      retryAfter: Number(resp.headers.get('retry-after')) * 1000 || 0,
    };
    if (res.status === 401 && session && res.error !== 'INVALID_CREDENTIALS') sessionExpired();
    return res;
  }

  function noteServerClock(resp, sent) {
    const date = Date.parse(resp.headers.get('date') || '');
    if (!date) return;
    // Date has one-second resolution: correct only clearly wrong local clocks.
    const offset = date + 500 - (sent + Date.now()) / 2;
    clockOffset = Math.abs(offset) > 1500 ? offset : 0;
  }

  const now = () => Date.now() + clockOffset;

  // ---- formatting ------------------------------------------------------------------------

  const money = new Intl.NumberFormat(undefined, {
    style: 'currency', currency: document.documentElement.dataset.currency || 'USD',
  });
  const fmtMoney = (cents) => money.format(cents / 100);
  const fmtTime = (ms) => new Date(ms).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });

  function fmtDuration(ms) {
    let s = Math.max(0, Math.ceil(ms / 1000));
    const d = Math.floor(s / 86400); s -= d * 86400;
    const h = Math.floor(s / 3600); s -= h * 3600;
    const m = Math.floor(s / 60); s -= m * 60;
    const two = (n) => String(n).padStart(2, '0');
    const hms = h || d ? `${two(h)}:${two(m)}:${two(s)}` : `${two(m)}:${two(s)}`;
    return d ? `${d}d ${hms}` : hms;
  }

  function say(el, text, kind) {
    el.className = `${el.className.split(' ')[0]}${kind ? ` ${kind}` : ''}`;
    el.textContent = text;
  }

  // ---- sales -----------------------------------------------------------------------------

  const cards = new Map(); // activity id -> {a, el, busy}
  const list = $('#activities');
  let pollDelay = POLL_MS;
  let pollTimer = 0;
  let refreshing = null;

  /** What the customer can do right now, from the server's state and the local clock. */
  function phase(a) {
    const t = now();
    if (a.state === 'ended' || (a.end_at && t >= Date.parse(a.end_at))) return 'ended';
    if (a.state === 'sold-out' || a.remaining === 0) return 'sold-out';
    if (t < Date.parse(a.start_at)) return 'pending';
    if (a.state === 'not-preheated') return 'unavailable';
    return 'open';
  }

  const BADGE = { open: 'On sale', pending: 'Coming soon', 'sold-out': 'Sold out', ended: 'Ended', unavailable: 'Unavailable' };
  const BUTTON = { open: 'Buy now', pending: 'Not started yet', 'sold-out': 'Sold out', ended: 'Sale ended', unavailable: 'Unavailable' };

  function renderCard(c) {
    const { a, el } = c;
    const p = phase(a);
    // Proof of work is done ahead of the click (during the countdown), in the background.
    if (session && (p === 'pending' || p === 'open') && a.admission && a.admission.difficulty && !c.work) {
      work(c).catch(() => {});
    }
    c.phase = p;
    el.dataset.phase = p;
    $('.title', el).textContent = a.title;
    $('.product', el).textContent = a.product_name;
    $('.price', el).textContent = fmtMoney(a.price_cents);
    const badge = $('.badge', el);
    badge.className = `badge ${p}`;
    badge.textContent = BADGE[p];
    const known = typeof a.remaining === 'number';
    $('.fill', el).style.width = known && a.stock ? `${(100 * a.remaining) / a.stock}%` : '0';
    $('.stock-text', el).textContent = known
      ? (a.remaining === 0 ? `Sold out · 0 of ${a.stock} left` : `${a.remaining} of ${a.stock} left`)
      : `${a.stock} in this sale (live stock unavailable)`;
    const buy = $('.buy', el);
    if (p === 'open' && !session) {
      buy.textContent = 'Log in to buy';
      buy.disabled = false;
    } else {
      buy.textContent = c.busy ? 'Please wait…' : BUTTON[p];
      buy.disabled = c.busy || p !== 'open';
    }
    buy.setAttribute('aria-label', `${buy.textContent}: ${a.title}`);
    renderCountdown(c);
  }

  function renderCountdown(c) {
    const { a, el } = c;
    const cd = $('.countdown', el);
    const t = now();
    if (c.phase === 'pending') {
      cd.textContent = `Starts in ${fmtDuration(Date.parse(a.start_at) - t)}`;
    } else if (c.phase === 'open' && a.end_at) {
      cd.textContent = `Ends in ${fmtDuration(Date.parse(a.end_at) - t)}`;
    } else {
      cd.textContent = '';
    }
  }

  function renderActivities(items) {
    const seen = new Set();
    items.forEach((a, i) => {
      const id = String(a.id);
      seen.add(id);
      let c = cards.get(id);
      if (!c) {
        const el = $('#card-tpl').content.firstElementChild.cloneNode(true);
        el.dataset.activityId = id;
        el.setAttribute('aria-labelledby', `title-${id}`);
        $('.title', el).id = `title-${id}`;
        c = { a, el, busy: false, phase: null };
        $('.buy', el).addEventListener('click', () => buy(c));
        cards.set(id, c);
      }
      c.a = a;
      renderCard(c);
      if (list.children[i] !== c.el) list.insertBefore(c.el, list.children[i] || null);
    });
    for (const [id, c] of cards) {
      if (!seen.has(id)) { c.el.remove(); cards.delete(id); }
    }
    $('#activities-empty').hidden = items.length > 0;
    list.setAttribute('aria-busy', 'false');
  }

  /** One refresh of the sales; concurrent callers share it. Reschedules itself. */
  function refreshActivities() {
    if (refreshing) return refreshing;
    clearTimeout(pollTimer);
    refreshing = (async () => {
      const res = await api('GET', '/activities');
      if (res.ok && Array.isArray(res.data)) {
        renderActivities(res.data);
        pollDelay = POLL_MS;
        $('#refreshed').textContent = `Updated ${fmtTime(Date.now())}`;
        if (stockTrouble) { stockTrouble = false; notice(''); }
      } else {
        pollDelay = Math.min(POLL_MAX_MS, Math.max(pollDelay * 2, res.retryAfter));
        stockTrouble = true;
        notice(`Live stock could not be updated. ${explain(res)} Retrying in ${Math.round(pollDelay / 1000)} s.`, 'warn');
      }
    })().finally(() => {
      refreshing = null;
      schedule();
    });
    return refreshing;
  }
  let stockTrouble = false;

  function schedule(delay = pollDelay) {
    clearTimeout(pollTimer);
    if (!document.hidden) pollTimer = setTimeout(refreshActivities, jitter(delay));
  }

  document.addEventListener('visibilitychange', () => {
    if (document.hidden) clearTimeout(pollTimer);
    else refreshActivities();
  });

  // Countdowns: local only. A sale that just opened (or ended) is re-rendered at once and its
  // stock fetched soon after, spread over a second so a crowd does not arrive all at once.
  setInterval(() => {
    let changed = false;
    for (const c of cards.values()) {
      if (phase(c.a) !== c.phase) { renderCard(c); changed = true; } else renderCountdown(c);
    }
    if (changed && !refreshing) schedule(300 + Math.random() * 1000);
    tickOrders();
  }, 250);

  // ---- admission: entry tickets and proof of work ------------------------------------------

  const hex = (n) => n.toString(16);
  const encoder = new TextEncoder();

  function zeroBits(bytes) {
    let n = 0;
    for (const b of bytes) {
      if (b === 0) { n += 8; continue; }
      return n + Math.clz32(b) - 24;
    }
    return n;
  }

  /** The first nonce solving `challenge`: SHA-256(challenge ":" nonce) starts with `bits`
   *  zero bits. Batches of digests in parallel, yielding to the page between batches. */
  async function solve(challenge, bits) {
    const BATCH = 256;
    for (let base = 0; ; base += BATCH) {
      const nonces = Array.from({ length: BATCH }, (_, i) => hex(base + i));
      const digests = await Promise.all(nonces.map((n) =>
        crypto.subtle.digest('SHA-256', encoder.encode(`${challenge}:${n}`))));
      for (let i = 0; i < BATCH; i++) {
        if (zeroBits(new Uint8Array(digests[i])) >= bits) return nonces[i];
      }
      if (base % (BATCH * 16) === 0) await sleep(0);
    }
  }

  /** A solved challenge for the card's sale (fetched and solved once, reused until it
   *  expires); null when the sale asks for no work. */
  function work(c) {
    const a = c.a;
    if (!a.admission || !a.admission.difficulty) return Promise.resolve(null);
    if (c.work && Date.parse(c.work.expires_at) - now() > 10000) return Promise.resolve(c.work);
    if (c.solving) return c.solving;
    c.solving = (async () => {
      const res = await api('POST', '/seckill/challenge', { activity_id: String(a.id) });
      if (!res.ok) return null;
      const nonce = await solve(res.data.challenge, res.data.difficulty);
      c.work = { challenge: res.data.challenge, nonce, expires_at: res.data.expires_at };
      return c.work;
    })().finally(() => { c.solving = null; });
    return c.solving;
  }

  /** An admission token for the card's sale: {token, wait_ms} or a failed API reply. */
  async function admission(c) {
    for (let attempt = 0; attempt < 2; attempt++) {
      const w = await work(c);
      const body = { activity_id: String(c.a.id) };
      if (w) { body.challenge = w.challenge; body.nonce = w.nonce; }
      const res = await api('POST', '/seckill/admission', body);
      if (res.ok) return res;
      // A stale or too easy challenge (the sale's difficulty changed): solve a new one.
      if ((res.error === 'POW_INVALID' || res.error === 'POW_REQUIRED') && attempt === 0) {
        c.work = null;
        continue;
      }
      return res;
    }
    return { ok: false, status: 0, error: 'POW_INVALID', message: '' };
  }

  // ---- buying ----------------------------------------------------------------------------

  /** POST /api/v1/seckill, with an admission token first when the sale requires one. */
  async function reserve(c, status) {
    const a = c.a;
    const body = { activity_id: String(a.id), product_id: String(a.product_id), quantity: 1 };
    if (!a.admission || !a.admission.required) return api('POST', '/seckill', body);
    let res;
    for (let ticket = 0; ticket < 2; ticket++) {
      const adm = await admission(c);
      if (!adm.ok) return adm;
      body.admission = adm.data.token;
      if (adm.data.wait_ms > 0) {
        say(status, 'You are in! The sale admits everyone who clicked at the opening in a random order; your turn comes in a moment…', 'warn');
        await sleep(adm.data.wait_ms);
      }
      for (let early = 0; early < 5; early++) {
        res = await api('POST', '/seckill', body);
        if (res.error !== 'TOO_EARLY') break;
        await sleep((res.data && res.data.retry_after_ms) || res.retryAfter || 200);
      }
      // A ticket that expired or is refused while we waited: one new one.
      if (res.error !== 'ADMISSION_EXPIRED' && res.error !== 'ADMISSION_INVALID') return res;
    }
    return res;
  }

  async function buy(c) {
    const status = $('.status', c.el);
    if (!session) {
      notice('Log in or create an account to buy.', 'warn');
      $('#username').focus();
      return;
    }
    if (c.busy) return;
    c.busy = true;
    renderCard(c);
    try {
      say(status, 'Sending your order…', 'warn');
      const a = c.a;
      const res = await reserve(c, status);
      if (!res.ok) {
        say(status, explain(res, a), 'err');
        if (res.error === 'SOLD_OUT') { a.remaining = 0; a.state = 'sold-out'; }
        if (res.error === 'ENDED') a.state = 'ended';
        refreshActivities();
        return;
      }
      say(status, `Queued: you are in line (reservation ${res.data.reservation_id}). Confirming your order…`, 'warn');
      refreshActivities();
      await awaitResult(c, status);
    } finally {
      c.busy = false;
      renderCard(c);
    }
  }

  /** Polls the reservation's outcome with a growing delay. */
  async function awaitResult(c, status) {
    const a = c.a;
    const started = Date.now();
    let misses = 0;
    for (let i = 0; Date.now() - started < RESULT_GIVE_UP_MS; i++) {
      await sleep(RESULT_DELAYS[Math.min(i, RESULT_DELAYS.length - 1)]);
      if (!session) return;
      const res = await api('GET', `/seckill/result?activity_id=${encodeURIComponent(a.id)}`);
      if (res.ok && res.data) {
        const d = res.data;
        if (d.status === 'success') {
          status.className = 'status ok';
          status.replaceChildren(
            strong('Success!'),
            ` Order #${d.order_id} is yours. Pay for it below${a.payment_window_secs ? ` within ${fmtDuration(a.payment_window_secs * 1000)}` : ''}.`,
          );
          status.dataset.orderId = d.order_id;
          refreshOrders();
          return;
        }
        if (d.status === 'failed') {
          say(status, `Your order was not completed${d.order_id ? ` (order #${d.order_id} is ${d.order_status || 'closed'})` : ''}.`, 'err');
          refreshOrders();
          return;
        }
        continue; // queued
      }
      if (res.status === 404 && ++misses >= 2) {
        say(status, 'Your reservation was released before it became an order. Please try again.', 'err');
        return;
      }
      if (res.error === 'UNAUTHORIZED') return;
      if (res.retryAfter) await sleep(res.retryAfter);
      if (res.status === 429 || res.status >= 500 || res.status === 0) {
        say(status, `Queued: still confirming your order… (${explain(res)})`, 'warn');
        await sleep(2000);
      }
    }
    say(status, 'Still processing. Your order will appear under “Your orders” shortly.', 'warn');
    refreshOrders();
  }

  function strong(text) {
    const s = document.createElement('strong');
    s.textContent = text;
    return s;
  }

  // ---- orders ----------------------------------------------------------------------------

  const ordersTable = $('#orders');
  const ordersStatus = $('#orders-status');
  let orders = [];

  async function refreshOrders() {
    if (!session) return;
    const res = await api('GET', '/orders');
    if (!res.ok) { say(ordersStatus, `Orders could not be loaded. ${explain(res)}`, 'err'); return; }
    orders = Array.isArray(res.data) ? res.data : [];
    renderOrders();
  }

  function renderOrders() {
    const body = ordersTable.tBodies[0];
    body.replaceChildren(...orders.map(orderRow));
    ordersTable.hidden = orders.length === 0;
    $('#orders-empty').hidden = orders.length > 0;
    tickOrders();
  }

  function orderRow(o) {
    const tr = document.createElement('tr');
    tr.dataset.orderId = o.id;
    tr.dataset.status = o.status;
    const c = cards.get(String(o.activity_id));
    const cells = [
      `#${o.id}`,
      c ? c.a.title : `Sale ${o.activity_id}`,
      String(o.quantity),
      fmtMoney(o.amount_cents),
    ];
    for (const [i, text] of cells.entries()) {
      const td = document.createElement(i === 0 ? 'th' : 'td');
      if (i === 0) td.scope = 'row';
      if (i >= 2) td.className = 'num';
      td.textContent = text;
      tr.append(td);
    }
    const st = document.createElement('td');
    st.className = `st-${o.status}`;
    st.textContent = o.status;
    const until = document.createElement('td');
    until.className = 'until';
    const act = document.createElement('td');
    if (o.status === 'pending') {
      const box = document.createElement('div');
      box.className = 'row-actions';
      box.append(
        button('Pay', `Pay order ${o.id}`, () => orderAction(o, 'pay')),
        button('Cancel', `Cancel order ${o.id}`, () => orderAction(o, 'cancel'), 'secondary'),
      );
      act.append(box);
    }
    tr.append(st, until, act);
    return tr;
  }

  function button(text, label, onClick, cls) {
    const b = document.createElement('button');
    b.type = 'button';
    b.textContent = text;
    b.setAttribute('aria-label', label);
    if (cls) b.className = cls;
    b.addEventListener('click', onClick);
    return b;
  }

  function tickOrders() {
    if (ordersTable.hidden) return;
    for (const tr of ordersTable.tBodies[0].rows) {
      const o = orders.find((x) => String(x.id) === tr.dataset.orderId);
      const cell = $('.until', tr);
      if (!o || !cell) continue;
      if (o.status !== 'pending') { cell.textContent = o.paid_at ? `paid ${fmtTime(Date.parse(o.paid_at))}` : '—'; continue; }
      const left = Date.parse(o.expires_at) - now();
      cell.textContent = left > 0 ? `${fmtTime(Date.parse(o.expires_at))} (${fmtDuration(left)} left)` : 'payment window closed';
    }
  }

  async function orderAction(o, action) {
    for (const b of ordersTable.querySelectorAll(`tr[data-order-id="${o.id}"] button`)) b.disabled = true;
    say(ordersStatus, action === 'pay' ? `Paying order #${o.id}…` : `Cancelling order #${o.id}…`, 'warn');
    const res = await api('POST', `/orders/${encodeURIComponent(o.id)}/${action}`);
    if (res.ok) {
      say(ordersStatus, action === 'pay'
        ? `Paid: order #${o.id} is confirmed. Thank you!`
        : `Cancelled: order #${o.id} is cancelled and the item is back on sale.`, 'ok');
      if (action === 'cancel') refreshActivities();
    } else {
      say(ordersStatus, explain(res), 'err');
    }
    await refreshOrders();
  }

  $('#orders-refresh').addEventListener('click', refreshOrders);

  // ---- login / register ------------------------------------------------------------------

  const form = $('#auth-form');
  const authStatus = $('#auth-status');

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const mode = ev.submitter && ev.submitter.value === 'register' ? 'register' : 'login';
    const username = form.username.value.trim();
    const password = form.password.value;
    if (!username || !password) {
      say(authStatus, 'Enter a username and a password.', 'err');
      (username ? form.password : form.username).focus();
      return;
    }
    if (mode === 'register') {
      if (!/^[A-Za-z0-9_.-]{3,32}$/.test(username)) {
        say(authStatus, 'A username is 3 to 32 letters, digits, “_”, “-” or “.”.', 'err');
        form.username.focus();
        return;
      }
      if (password.length < 8) {
        say(authStatus, 'Choose a password of at least 8 characters.', 'err');
        form.password.focus();
        return;
      }
    }
    for (const b of form.querySelectorAll('button')) b.disabled = true;
    try {
      if (mode === 'register') {
        say(authStatus, 'Creating your account…', 'warn');
        const res = await api('POST', '/auth/register', { username, password });
        if (!res.ok) { say(authStatus, explain(res), 'err'); return; }
      }
      say(authStatus, 'Logging in…', 'warn');
      const res = await api('POST', '/auth/login', { username, password });
      if (!res.ok) { say(authStatus, explain(res), 'err'); return; }
      form.password.value = '';
      say(authStatus, '');
      setSession({ token: res.data.token, expires_at: res.data.expires_at, username });
      notice(mode === 'register' ? `Welcome, ${username}! Your account is ready.` : `Welcome back, ${username}.`, 'ok');
      $('#activities-title').focus();
      refreshOrders();
    } finally {
      for (const b of form.querySelectorAll('button')) b.disabled = false;
    }
  });

  $('#logout').addEventListener('click', () => {
    setSession(null);
    notice('You are logged out.', 'ok');
    form.username.focus();
  });

  function sessionExpired() {
    setSession(null);
    notice(MESSAGES.UNAUTHORIZED(), 'err');
  }

  function renderSession() {
    const inside = Boolean(session);
    $('#auth').hidden = inside;
    $('#session').hidden = !inside;
    $('#orders-section').hidden = !inside;
    $('#session-user').textContent = inside ? session.username : '';
    if (!inside) { orders = []; renderOrders(); }
    // Solved challenges belong to one user.
    for (const c of cards.values()) { c.work = null; renderCard(c); }
  }

  function notice(text, kind) {
    say($('#notice'), text, kind);
  }

  // ---- start -----------------------------------------------------------------------------

  renderSession();
  refreshActivities();
  if (session) refreshOrders();
})();
