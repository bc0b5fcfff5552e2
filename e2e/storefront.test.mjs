// The storefront in a real browser against a real stack.
//
// Starts redis-server + module, MariaDB, seckill-gateway and seckill-worker (see stack.mjs),
// creates sales through the admin API, then drives Debian's Chromium (playwright-core) through
// what a customer does: register, wait for the countdown, buy, see "Queued" then "Success!"
// with the order id, pay; buy again and read the limit message; try a sale another customer
// just bought out and read "Sold out". Along the way it checks that stock polling is modest
// and pauses in a hidden tab, and that the page logs no script or CSP errors.
//
// The gateway runs with admission on (every sale needs an admission token, proof of work of
// ADMISSION_BITS bits, an opening window): the page must get its token and solve the
// challenge itself, and a script that skips either is refused.
//
// Run: `node --test e2e/storefront.test.mjs` (or `npm test --prefix e2e`) after
// `cargo build --workspace` and `npm ci --prefix e2e`. Screenshots go to e2e/screenshots/.
// CHROMIUM=/path/to/chromium overrides /usr/bin/chromium.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { chromium } from 'playwright-core';
import { Stack, apiClient, REPO } from './stack.mjs';

const SHOTS = path.join(REPO, 'e2e', 'screenshots');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const OVERALL_MS = 240000;
const ADMISSION_BITS = 12;
const ADMISSION_CONFIG = `admission:\n  required: true\n  difficulty: ${ADMISSION_BITS}\n  window_ms: 300`;

let stack;
let api;
let adminToken;
let browser;
let profileDir;
let page;
const pageErrors = [];
const activityRequests = []; // timestamps of the page's GET /api/v1/activities
const admissionBodies = []; // the page's POST /api/v1/seckill/admission bodies
const reserveBodies = []; // the page's POST /api/v1/seckill bodies
const sales = {};

// Whatever happens (a hung step, a failing hook), the run ends and the servers go away.
const overall = setTimeout(async () => {
  console.error(`storefront e2e: exceeded ${OVERALL_MS} ms; stopping`);
  await shutdown();
  process.exit(1);
}, OVERALL_MS);
overall.unref();
// Started by a harness (the Rust wrapper test): end with it, even if it is killed.
const parent = Number(process.env.SECKILL_E2E_PARENT_PID || 0);
if (parent) {
  setInterval(async () => {
    try { process.kill(parent, 0); } catch (_) { await shutdown(); process.exit(1); }
  }, 1000).unref();
}
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.once(sig, async () => { await shutdown(); process.exit(130); });
}

async function shutdown() {
  try { if (browser) await browser.close(); } catch (_) { /* already gone */ }
  browser = null;
  if (profileDir) rmSync(profileDir, { recursive: true, force: true });
  if (stack) await stack.stop();
}

const shot = (name) => page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
const card = (id) => page.locator(`li.card[data-activity-id="${id}"]`);
const iso = (ms) => new Date(ms).toISOString();

let failed = false;

/** A test whose failure keeps a screenshot and prints the servers' logs at the end. */
function step(name, options, fn) {
  test(name, options, async (t) => {
    try {
      await fn(t);
    } catch (e) {
      failed = true;
      const file = `failed-${name.replace(/[^a-z0-9]+/gi, '-').slice(0, 40)}`;
      if (page) await shot(file).catch(() => {});
      throw e;
    }
  });
}

async function createSale(fields) {
  const r = await api('POST', '/api/v1/admin/activities', { token: adminToken, body: fields });
  assert.equal(r.status, 201, `create activity: ${JSON.stringify(r.body)}`);
  return r.data;
}

/** Leading zero bits of SHA-256(challenge ":" nonce). */
function workBits(challenge, nonce) {
  const d = createHash('sha256').update(`${challenge}:${nonce}`).digest();
  let n = 0;
  for (const b of d) { if (b === 0) { n += 8; continue; } return n + Math.clz32(b) - 24; }
  return n;
}

/** What a well-behaved script does before reserving: challenge, work, admission token. */
async function admitApi(token, activityId) {
  const c = await api('POST', '/api/v1/seckill/challenge', { token, body: { activity_id: String(activityId) } });
  assert.equal(c.status, 200, JSON.stringify(c.body));
  let nonce = 0;
  while (workBits(c.data.challenge, String(nonce)) < c.data.difficulty) nonce++;
  const a = await api('POST', '/api/v1/seckill/admission', {
    token, body: { activity_id: String(activityId), challenge: c.data.challenge, nonce: String(nonce) },
  });
  assert.equal(a.status, 200, JSON.stringify(a.body));
  await new Promise((r) => setTimeout(r, a.data.wait_ms));
  return a.data.token;
}

async function loginApi(username, password) {
  const r = await api('POST', '/api/v1/auth/login', { body: { username, password } });
  assert.equal(r.status, 200, `login ${username}: ${JSON.stringify(r.body)}`);
  return r.data.token;
}

/** Records every text a status element shows, so a short-lived "Queued" is not missed. */
async function recordStatus(selector) {
  await page.evaluate((sel) => {
    const el = document.querySelector(sel);
    window.__statusLog = [];
    new MutationObserver(() => window.__statusLog.push(el.textContent))
      .observe(el, { childList: true, characterData: true, subtree: true });
  }, selector);
}

before(async () => {
  mkdirSync(SHOTS, { recursive: true });
  stack = new Stack({ config: ADMISSION_CONFIG });
  try {
    await stack.start();
  } catch (e) {
    failed = true;
    throw e;
  }
  api = apiClient(stack.baseUrl);
  adminToken = await loginApi('admin', 'admin');
  const now = Date.now();
  // Open now: bought, then cancelled, in the browser.
  sales.earbuds = await createSale({
    title: 'Wireless earbuds', product_name: 'Earbuds E3', price_cents: 2599,
    stock: 3, start_at: 'now', end_at: iso(now + 3600000),
  });
  // Open now with one item: another customer takes it.
  sales.single = await createSale({
    title: 'Last concert ticket', product_name: 'Ticket, row A', price_cents: 12000,
    stock: 1, start_at: 'now', end_at: iso(now + 3600000),
  });
  // Tomorrow: a long countdown for the screenshot.
  sales.later = await createSale({
    title: 'Limited sneakers', product_name: 'Sneakers S1', price_cents: 8900,
    stock: 100, per_user_limit: 2, start_at: iso(now + 26 * 3600000),
  });

  profileDir = mkdtempSync(path.join(tmpdir(), 'seckill-e2e-chromium-'));
  const context = await chromium.launchPersistentContext(profileDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1200, height: 760 },
    locale: 'en-US',
    timezoneId: 'UTC',
  });
  browser = context;
  page = context.pages()[0] || await context.newPage();
  page.setDefaultTimeout(20000);
  page.on('pageerror', (e) => pageErrors.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    // Chromium logs every non-2xx fetch ("Failed to load resource"); refusals are expected.
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) {
      pageErrors.push(`console: ${m.text()}`);
    }
  });
  page.on('request', (r) => {
    const p = new URL(r.url()).pathname;
    if (r.method() === 'GET' && p === '/api/v1/activities') activityRequests.push(Date.now());
    if (r.method() === 'POST' && p === '/api/v1/seckill/admission') admissionBodies.push(JSON.parse(r.postData() || '{}'));
    if (r.method() === 'POST' && p === '/api/v1/seckill') reserveBodies.push(JSON.parse(r.postData() || '{}'));
  });
});

after(async () => {
  if (failed && stack) console.error(`storefront e2e failed; screenshots in ${SHOTS}\n${stack.logs()}`);
  await shutdown();
  clearTimeout(overall);
});

step('a visitor who is not signed in sees the login form and no session controls, on a desktop and on a phone', { timeout: 60000 }, async () => {
  for (const [name, viewport] of [['desktop', { width: 1200, height: 760 }], ['phone', { width: 375, height: 740 }]]) {
    await page.setViewportSize(viewport);
    await page.goto(stack.baseUrl + '/');
    await card(sales.earbuds.id).waitFor();
    // `hidden` must really hide: the session bar once stayed visible through a CSS display rule.
    assert.equal(await page.locator('#session').isHidden(), true, `${name}: session controls shown to a visitor`);
    assert.equal(await page.getByRole('button', { name: /log out/i }).count(), 0, `${name}: a log-out button for a visitor`);
    assert.equal(await page.locator('#auth').isVisible(), true, `${name}: no login form`);
    assert.equal(await page.getByLabel('Username').isVisible(), true, `${name}: no username field`);
    assert.equal(await page.getByLabel('Password').isVisible(), true, `${name}: no password field`);
    // Nothing wider than the screen: no sideways scrolling on a phone.
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `${name}: the page is ${overflow}px wider than the viewport`);
    await shot(`0-anonymous-${name}`);
  }
  await page.setViewportSize({ width: 1200, height: 760 });
});

step('register, wait for the countdown, buy, see queued then success, pay', { timeout: 90000 }, async () => {
  // Starts a few seconds from now: the customer watches the countdown, then buys.
  const now = Date.now();
  sales.soon = await createSale({
    title: 'Mechanical keyboard drop', product_name: 'Keyboard K2', price_cents: 4999,
    stock: 5, per_user_limit: 1, start_at: iso(now + 15000), end_at: iso(now + 3600000),
  });
  await page.goto(stack.baseUrl + '/');
  const soon = card(sales.soon.id);
  await soon.locator('.countdown', { hasText: /Starts in 00:\d\d/ }).waitFor();
  const buy = soon.locator('button.buy');
  assert.equal(await buy.isDisabled(), true, 'buy is disabled before the start');
  await card(sales.later.id).locator('.countdown', { hasText: /Starts in 1d / }).waitFor();

  const user = `alice_${Date.now() % 1000000}`;
  await page.getByLabel('Username').fill(user);
  await page.getByLabel('Password').fill('correct horse battery');
  await page.getByRole('button', { name: 'Create account' }).click();
  await page.locator('#session-user', { hasText: user }).waitFor();
  await page.locator('#notice', { hasText: `Welcome, ${user}` }).waitFor();
  assert.equal(await page.locator('#auth').isHidden(), true);
  assert.equal(await page.evaluate(() => JSON.parse(sessionStorage.getItem('seckill.session')).username), user);
  await shot('1-countdown');

  await recordStatus(`li.card[data-activity-id="${sales.soon.id}"] .status`);
  await buy.waitFor({ state: 'visible' });
  await page.waitForFunction((sel) => !document.querySelector(sel).disabled,
    `li.card[data-activity-id="${sales.soon.id}"] button.buy`, { timeout: 30000 });
  assert.match(await buy.textContent(), /Buy now/);
  await buy.click();

  const status = soon.locator('.status');
  await status.filter({ hasText: /^Success! Order #\d+ is yours/ }).waitFor({ timeout: 30000 });
  const log = await page.evaluate(() => window.__statusLog);
  assert.ok(log.some((t) => /^Queued: you are in line \(reservation /.test(t)), `no "Queued" state seen: ${JSON.stringify(log)}`);
  const orderId = Number((await status.textContent()).match(/Order #(\d+)/)[1]);
  await shot('2-success');

  // The page got its admission token with the proof of work solved in the browser, and sent
  // the token with the reservation.
  const admitted = admissionBodies.filter((b) => b.activity_id === String(sales.soon.id));
  assert.ok(admitted.length >= 1, 'no admission request');
  for (const b of admitted) {
    assert.ok(b.challenge && b.nonce, `admission without work: ${JSON.stringify(b)}`);
    assert.ok(workBits(b.challenge, b.nonce) >= ADMISSION_BITS, `unsolved challenge: ${JSON.stringify(b)}`);
  }
  const sent = reserveBodies.filter((b) => b.activity_id === String(sales.soon.id));
  assert.ok(sent.length >= 1 && sent.every((b) => typeof b.admission === 'string' && b.admission.startsWith('a1.')),
    `reservations without a token: ${JSON.stringify(sent)}`);

  // The order is in the table, pending; pay it.
  const row = page.locator(`#orders tr[data-order-id="${orderId}"]`);
  await row.locator('.st-pending').waitFor();
  await row.getByRole('button', { name: `Pay order ${orderId}` }).click();
  await page.locator('#orders-status', { hasText: `Paid: order #${orderId} is confirmed` }).waitFor();
  await page.locator(`#orders tr[data-order-id="${orderId}"] .st-paid`).waitFor();

  // The server agrees.
  const token = await page.evaluate(() => JSON.parse(sessionStorage.getItem('seckill.session')).token);
  const orders = await api('GET', '/api/v1/orders', { token });
  const mine = orders.data.find((o) => o.id === orderId);
  assert.equal(mine && mine.status, 'paid', JSON.stringify(orders.body));
  await soon.locator('.stock-text', { hasText: '4 of 5 left' }).waitFor();
});

step('a second buy shows the per-user limit', { timeout: 30000 }, async () => {
  const soon = card(sales.soon.id);
  await soon.locator('button.buy').click();
  await soon.locator('.status', { hasText: 'Purchase limit reached: you already hold the maximum for this sale (1 per customer).' }).waitFor();
  await shot('3-limit');
  const stock = await api('GET', `/api/v1/activities/${sales.soon.id}`);
  assert.equal(stock.data.remaining, 4, 'the refused click did not consume stock');
});

step('cancel an order: the item goes back on sale', { timeout: 30000 }, async () => {
  const earbuds = card(sales.earbuds.id);
  await earbuds.locator('.stock-text', { hasText: '3 of 3 left' }).waitFor();
  await earbuds.locator('button.buy').click();
  const status = earbuds.locator('.status');
  await status.filter({ hasText: /^Success! Order #\d+ is yours/ }).waitFor();
  const orderId = Number((await status.textContent()).match(/Order #(\d+)/)[1]);
  await earbuds.locator('.stock-text', { hasText: '2 of 3 left' }).waitFor();
  const row = page.locator(`#orders tr[data-order-id="${orderId}"]`);
  await row.getByRole('button', { name: `Cancel order ${orderId}` }).click();
  await page.locator('#orders-status', { hasText: `Cancelled: order #${orderId} is cancelled` }).waitFor();
  await page.locator(`#orders tr[data-order-id="${orderId}"] .st-cancelled`).waitFor();
  await earbuds.locator('.stock-text', { hasText: '3 of 3 left' }).waitFor();
});

step('stock polling is modest and pauses while the tab is hidden', { timeout: 30000 }, async () => {
  // The page has been open for well over ten seconds, with buys that each add one refresh.
  const first = activityRequests[0];
  const span = (Date.now() - first) / 1000;
  assert.ok(activityRequests.length <= span / 2 + 6, `${activityRequests.length} stock requests in ${span.toFixed(1)} s`);

  await page.evaluate(() => {
    Object.defineProperty(document, 'hidden', { configurable: true, get: () => true });
    document.dispatchEvent(new Event('visibilitychange'));
  });
  const before = activityRequests.length;
  await page.waitForTimeout(6500);
  assert.equal(activityRequests.length, before, 'no stock requests while hidden');
  await page.evaluate(() => {
    Object.defineProperty(document, 'hidden', { configurable: true, get: () => false });
    document.dispatchEvent(new Event('visibilitychange'));
  });
  const deadline = Date.now() + 1500;
  while (activityRequests.length === before && Date.now() < deadline) await page.waitForTimeout(50);
  assert.ok(activityRequests.length > before, 'visible again: refreshed at once');
});

step('a sale another customer bought out shows sold out', { timeout: 60000 }, async () => {
  const single = card(sales.single.id);
  await single.locator('.stock-text', { hasText: '1 of 1 left' }).waitFor();
  assert.equal(await single.locator('button.buy').isEnabled(), true);

  // Hold the page's stock refreshes (a slow network), so it still offers the item...
  const held = [];
  const hold = (route) => { held.push(route); };
  await page.route('**/api/v1/activities', hold);
  // Refreshes never overlap, so once one is held no earlier answer can still arrive.
  while (held.length === 0) await page.waitForTimeout(50);

  // ...while another customer takes the only one.
  const bob = `bob_${Date.now() % 1000000}`;
  const reg = await api('POST', '/api/v1/auth/register', { body: { username: bob, password: 'another password' } });
  assert.equal(reg.status, 201, JSON.stringify(reg.body));
  const bobToken = await loginApi(bob, 'another password');
  const body = { activity_id: String(sales.single.id), product_id: String(sales.single.product_id), quantity: 1 };
  // A script that skips the admission, or the work, is refused and takes nothing.
  const skipped = await api('POST', '/api/v1/seckill', { token: bobToken, body });
  assert.equal(skipped.body && skipped.body.error, 'ADMISSION_REQUIRED', JSON.stringify(skipped.body));
  const lazy = await api('POST', '/api/v1/seckill/admission', { token: bobToken, body: { activity_id: String(sales.single.id) } });
  assert.equal(lazy.body && lazy.body.error, 'POW_REQUIRED', JSON.stringify(lazy.body));
  const r = await api('POST', '/api/v1/seckill', {
    token: bobToken, body: { ...body, admission: await admitApi(bobToken, sales.single.id) },
  });
  assert.equal(r.status, 200, JSON.stringify(r.body));

  await single.locator('button.buy').click();
  await single.locator('.status', { hasText: 'Sold out: every item in this sale has been claimed.' }).waitFor();
  await single.locator('.badge', { hasText: 'Sold out' }).waitFor();
  assert.equal(await single.locator('button.buy').isDisabled(), true);

  await page.unroute('**/api/v1/activities', hold);
  await Promise.all(held.map((route) => route.continue().catch(() => {})));
  await single.locator('.stock-text', { hasText: 'Sold out · 0 of 1 left' }).waitFor();

  // A fresh visit shows it sold out straight away.
  await page.reload();
  await card(sales.single.id).locator('.badge', { hasText: 'Sold out' }).waitFor();
  assert.equal(await card(sales.single.id).locator('button.buy').textContent(), 'Sold out');
  await page.locator(`#orders tr[data-order-id]`).first().waitFor();
  await card(sales.soon.id).locator('.stock-text', { hasText: '4 of 5 left' }).waitFor();
  await shot('4-storefront');
});

// Refusals a real stack cannot produce on demand (a rate limit, an outage, a proxy error
// page...) are answered here by Playwright in place of the gateway, with the gateway's
// envelope, to check the words the customer reads for each code.
step('every refusal code reads as a clear message', { timeout: 60000 }, async () => {
  const soon = card(sales.soon.id);
  const cases = [
    [403, 'NOT_STARTED', 'This sale has not started yet.'],
    [410, 'ENDED', 'This sale has ended.'],
    [404, 'NO_ACTIVITY', 'This sale is not available'],
    [400, 'INVALID_ARGUMENT', "The shop could not accept that request: 'quantity' must be an integer from 1 to 1000000"],
    [429, 'RATE_LIMITED', 'Too many requests right now. Please wait a few seconds and try again.'],
    [503, 'SERVICE_UNAVAILABLE', 'The shop is temporarily unavailable. Please try again in a moment.'],
    [503, 'TIMEOUT', 'The shop is very busy and did not answer in time.'],
    [500, 'INTERNAL', 'Something went wrong on our side.'],
    [502, null, 'The shop is overloaded right now (error 502). Please try again in a moment.'],
    [409, 'SOLD_OUT', 'Sold out: every item in this sale has been claimed.'],
  ];
  for (const [status, code, words] of cases) {
    const answer = (route) => (code
      ? route.fulfill({ status, contentType: 'application/json', body: JSON.stringify({ code: status, message: code === 'INVALID_ARGUMENT' ? "'quantity' must be an integer from 1 to 1000000" : 'x', data: null, error: code }) })
      : route.fulfill({ status, contentType: 'text/html', body: '<html><body>Bad Gateway</body></html>' }));
    await page.route('**/api/v1/seckill', answer);
    // SOLD_OUT disables the button until the next refresh shows the real stock again.
    await page.waitForFunction((sel) => !document.querySelector(sel).disabled,
      `li.card[data-activity-id="${sales.soon.id}"] button.buy`);
    await soon.locator('button.buy').click();
    await soon.locator('.status', { hasText: words }).waitFor();
    await page.unroute('**/api/v1/seckill', answer);
  }

  // An expired session sends the customer back to the login form.
  const expired = (route) => route.fulfill({ status: 401, contentType: 'application/json', body: JSON.stringify({ code: 401, message: 'token expired', data: null, error: 'UNAUTHORIZED' }) });
  await page.route('**/api/v1/seckill', expired);
  await page.waitForFunction((sel) => !document.querySelector(sel).disabled,
    `li.card[data-activity-id="${sales.soon.id}"] button.buy`);
  await soon.locator('button.buy').click();
  await page.locator('#notice', { hasText: 'Your session has expired. Please log in again.' }).waitFor();
  await page.locator('#auth-form').waitFor();
  assert.equal(await page.evaluate(() => sessionStorage.getItem('seckill.session')), null);
  assert.equal(await page.locator('#orders-section').isHidden(), true);
  await page.unroute('**/api/v1/seckill', expired);

  // Login refusals.
  await page.getByLabel('Username').fill('nobody_here');
  await page.getByLabel('Password').fill('wrong password');
  await page.getByRole('button', { name: 'Log in', exact: true }).click();
  await page.locator('#auth-status', { hasText: 'Wrong username or password.' }).waitFor();
  await page.getByLabel('Username').fill('admin');
  await page.getByLabel('Password').fill('some password');
  await page.getByRole('button', { name: 'Create account' }).click();
  await page.locator('#auth-status', { hasText: 'That username is already taken.' }).waitFor();
  await shot('5-logged-out');
});

step('the page logged no script or CSP errors', {}, () => {
  assert.deepEqual(pageErrors, []);
});
