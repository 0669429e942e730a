// The <herald-feed> widget in headless Chromium against a real `herald serve` (started by run.sh):
// events go in through the REST API, flow through ingest, matching and in_app dispatch, and the
// test looks at what a user sees. Screenshots go to tests/artifacts/ (not committed): light, dark,
// and phone widths of 320 and 375 px.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const BASE = required('HERALD_URL');
const ORG = required('HERALD_ORG_ID');
const API_KEY = required('HERALD_API_KEY');
const API = `${BASE}/api/v1/orgs/${ORG}`;
const ARTIFACTS = join(dirname(fileURLToPath(import.meta.url)), '..', 'artifacts');
const RUN = Date.now().toString(36);
const EVENT_TYPE = `browser.test.${RUN}`;
// Sent with no template and no `title` property: the feed shows it humanised.
const UNTITLED_TYPE = 'invoice.overdue';
const LIVE = 20_000;

let context;
let userDataDir;

function required(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run tests/browser/run.sh`);
  return v;
}

async function call(method, path, body, headers = { 'x-api-key': API_KEY }) {
  const res = await fetch(API + path, { method, headers: { 'content-type': 'application/json', ...headers }, body: body && JSON.stringify(body) });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

async function tokenFor(userId) {
  return (await call('POST', '/feeds/tokens', { userId })).token;
}

async function sendEvent(userId, n) {
  const answer = await call('POST', '/events', { type: EVENT_TYPE, module: 'tests', properties: { n }, userId });
  return answer;
}

/** Waits until the user's feed (read through the API) holds `count` items. */
async function feedHolds(token, count) {
  const deadline = Date.now() + LIVE;
  for (;;) {
    const page = await call('GET', '/feed?limit=100', undefined, { authorization: `Bearer ${token}` });
    if (page.items.length >= count) return page;
    if (Date.now() > deadline) throw new Error(`the feed holds ${page.items.length} items, expected ${count}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function openWidget(token, { page } = {}) {
  const p = page || (await context.newPage());
  await p.goto(`${BASE}/demo/feed?orgId=${ORG}&token=${encodeURIComponent(token)}`);
  await p.locator('herald-feed[data-connection="open"]').waitFor({ timeout: LIVE });
  return p;
}

const badge = (page) => page.locator('herald-feed .badge');
const bell = (page) => page.locator('herald-feed .bell');
const shot = (page, name) => page.screenshot({ path: join(ARTIFACTS, `${name}.png`) });
const panel = (page) => page.locator('herald-feed .panel');

/** A user with a few items, as a screenshot should show them: an untitled invoice.overdue with a
 *  message, a titled item with a long unbroken word, and a plain test item. */
async function seededUser(name) {
  const user = `${name}-${RUN}`;
  const token = await tokenFor(user);
  await sendEvent(user, 1);
  await call('POST', '/events', { type: EVENT_TYPE, module: 'tests', userId: user,
    properties: { title: 'Deploy finished: herald-api-production-eu-west-1-canary-7f3c2a', message: 'All 12 checks passed.' } });
  await call('POST', '/events', { type: UNTITLED_TYPE, module: 'billing', userId: user,
    properties: { amount: 120, message: 'Invoice #1042 is 3 days overdue.' } });
  await feedHolds(token, 3);
  return { user, token };
}

/** `rgb(r, g, b)` → WCAG relative luminance. */
function luminance(css) {
  const [r, g, b] = css.match(/[\d.]+/g).slice(0, 3).map(Number).map((c) => {
    const v = c / 255;
    return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
  });
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
}

function contrast(a, b) {
  const [hi, lo] = [luminance(a), luminance(b)].sort((x, y) => y - x);
  return (hi + 0.05) / (lo + 0.05);
}

/** The panel's and its first item's colours, as the browser computes them. */
const colours = (page) => page.evaluate(() => {
  const root = document.querySelector('herald-feed').shadowRoot;
  const style = (sel) => getComputedStyle(root.querySelector(sel));
  return {
    background: style('.panel').backgroundColor,
    title: style('.item .title').color,
    body: style('.item .body').color,
    time: style('.item time').color,
  };
});

before(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  userDataDir = mkdtempSync(join(tmpdir(), 'herald-chromium-'));
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
    viewport: { width: 900, height: 640 },
  });
  const channel = await call('POST', '/notifications/channels', { kind: 'in_app', name: `Browser feed ${RUN}` });
  await call('POST', '/notifications/rules', { key: EVENT_TYPE, channelIds: [channel.id] });
  await call('POST', '/notifications/rules', { key: UNTITLED_TYPE, channelIds: [channel.id] });
});

after(async () => {
  await context?.close();
  if (userDataDir) rmSync(userDataDir, { recursive: true, force: true });
});

test('the badge shows the unread count, and the list opens and moves with the keyboard', async () => {
  const user = `badge-${RUN}`;
  const token = await tokenFor(user);
  for (let n = 1; n <= 3; n++) await sendEvent(user, n);
  const feed = await feedHolds(token, 3);
  const page = await openWidget(token);

  await assert.doesNotReject(badge(page).filter({ hasText: /^3$/ }).waitFor({ timeout: LIVE }));
  assert.equal(await bell(page).getAttribute('aria-label'), 'Notifications, 3 unread');
  assert.equal(await bell(page).getAttribute('aria-expanded'), 'false');

  await bell(page).focus();
  await page.keyboard.press('Enter');
  assert.equal(await bell(page).getAttribute('aria-expanded'), 'true');
  const items = page.locator('herald-feed .item');
  assert.equal(await items.count(), 3);
  assert.equal(await items.first().locator('.title').textContent(), feed.items[0].title, 'newest first, titled as the API says');
  await page.keyboard.press('ArrowDown');
  assert.equal(await page.evaluate(() => document.querySelector('herald-feed').shadowRoot.activeElement?.dataset.id), feed.items[1].id);
  await shot(page, 'feed-badge-open');
  await page.keyboard.press('Escape');
  assert.equal(await bell(page).getAttribute('aria-expanded'), 'false');
  await page.close();
});

test('an event sent to the user appears live', async () => {
  const user = `live-${RUN}`;
  const token = await tokenFor(user);
  const page = await openWidget(token);
  assert.equal(await badge(page).isHidden(), true, 'no badge at zero');

  await sendEvent(user, 1);
  await badge(page).filter({ hasText: /^1$/ }).waitFor({ timeout: LIVE });
  await bell(page).click();
  await page.locator('herald-feed .item').first().waitFor();
  await shot(page, 'feed-live-item');
  await page.close();
});

test('marking read in one page updates the badge in another page of the same user', async () => {
  const user = `sync-${RUN}`;
  const token = await tokenFor(user);
  await sendEvent(user, 1);
  await sendEvent(user, 2);
  await feedHolds(token, 2);
  const a = await openWidget(token);
  const b = await openWidget(token);
  await badge(b).filter({ hasText: /^2$/ }).waitFor({ timeout: LIVE });

  await bell(a).click();
  await a.locator('herald-feed .item').first().click();
  await badge(b).filter({ hasText: /^1$/ }).waitFor({ timeout: LIVE });
  await shot(b, 'feed-sync-other-tab');

  await a.locator('herald-feed .all').click();
  await badge(b).waitFor({ state: 'hidden', timeout: LIVE });
  await badge(a).waitFor({ state: 'hidden', timeout: LIVE });
  await a.close();
  await b.close();
});

test('a dropped connection recovers and catches up on what it missed', async () => {
  const user = `drop-${RUN}`;
  const token = await tokenFor(user);
  const page = await context.newPage();
  // Stand between the widget and the server: forward frames until told to drop them, then cut
  // the connection the way a network failure would.
  let forward = true;
  const sockets = [];
  await page.routeWebSocket(/\/feed\/socket/, (ws) => {
    const server = ws.connectToServer();
    ws.onMessage((m) => server.send(m));
    server.onMessage((m) => { if (forward) ws.send(m); });
    sockets.push({ ws, server });
  });
  await openWidget(token, { page });
  await sendEvent(user, 1);
  await badge(page).filter({ hasText: /^1$/ }).waitFor({ timeout: LIVE });

  forward = false;
  await sendEvent(user, 2);
  await feedHolds(token, 2);
  await new Promise((r) => setTimeout(r, 500));
  assert.equal(await badge(page).textContent(), '1', 'the push was lost');

  const states = [];
  await page.exposeFunction('recordState', (s) => states.push(s));
  await page.evaluate(() => document.querySelector('herald-feed').addEventListener('herald-feed:connection', (e) => window.recordState(e.detail.state)));
  forward = true;
  const { ws, server } = sockets.at(-1);
  await ws.close({ code: 1001, reason: 'network dropped' });
  server.close();

  await badge(page).filter({ hasText: /^2$/ }).waitFor({ timeout: LIVE });
  assert.ok(sockets.length >= 2, 'the widget reconnected');
  assert.ok(states.includes('closed') && states.at(-1) === 'open', `states: ${states}`);
  await bell(page).click();
  assert.equal(await page.locator('herald-feed .item').count(), 2, 'the missed item is listed');
  await shot(page, 'feed-reconnected');
  await page.close();
});

for (const width of [320, 375]) {
  test(`the open panel fits a ${width} px phone screen`, async () => {
    const { token } = await seededUser(`phone${width}`);
    const page = await context.newPage();
    await page.setViewportSize({ width, height: 640 });
    await openWidget(token, { page });
    await bell(page).click();
    await page.locator('herald-feed .item').nth(2).waitFor({ timeout: LIVE });
    const box = await panel(page).boundingBox();
    assert.ok(box, 'the panel is shown');
    assert.ok(box.x >= 0 && box.x + box.width <= width, `the panel ${JSON.stringify(box)} fits ${width} px across`);
    assert.ok(box.y >= 0 && box.y + box.height <= 640, `the panel ${JSON.stringify(box)} fits 640 px down`);
    // 22rem (352 px), or the screen less 8 px a side when that is narrower.
    assert.ok(Math.abs(box.width - Math.min(352, width - 16)) <= 1, `the panel's width: ${box.width}`);
    const scroll = await page.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(scroll <= width, `no sideways scrolling: ${scroll} px wide`);
    await shot(page, `feed-${width}px`);
    await page.close();
  });
}

test('in dark mode the panel is dark and its text stays readable', async () => {
  const { token } = await seededUser('dark');
  const page = await context.newPage();
  await page.emulateMedia({ colorScheme: 'light' });
  await openWidget(token, { page });
  await bell(page).click();
  await page.locator('herald-feed .item').nth(2).waitFor({ timeout: LIVE });
  const light = await colours(page);
  await shot(page, 'feed-light');

  await page.emulateMedia({ colorScheme: 'dark' });
  const dark = await colours(page);
  await shot(page, 'feed-dark');
  assert.notEqual(dark.background, light.background, 'dark mode changes the panel background');
  assert.ok(luminance(dark.background) < 0.05, `a dark background: ${dark.background}`);
  for (const [name, c] of [['light', light], ['dark', dark]]) {
    assert.ok(contrast(c.title, c.background) >= 7, `${name}: title ${c.title} on ${c.background}`);
    assert.ok(contrast(c.body, c.background) >= 4.5, `${name}: body ${c.body} on ${c.background}`);
    assert.ok(contrast(c.time, c.background) >= 4.5, `${name}: time ${c.time} on ${c.background}`);
  }
  await page.close();
});

test('an item without a template shows a humanised title, and the API keeps the raw type', async () => {
  const user = `untitled-${RUN}`;
  const token = await tokenFor(user);
  await call('POST', '/events', { type: UNTITLED_TYPE, module: 'billing', properties: { amount: 120 }, userId: user });
  const feed = await feedHolds(token, 1);
  assert.equal(feed.items[0].title, 'Invoice overdue');
  assert.equal(feed.items[0].eventType, UNTITLED_TYPE);
  const page = await openWidget(token);
  await bell(page).click();
  assert.equal(await page.locator('herald-feed .item .title').first().textContent(), 'Invoice overdue');
  await page.close();
});

test('closing the socket from the browser is a clean close (1000), not 1006', async () => {
  const token = await tokenFor(`close-${RUN}`);
  const page = await openWidget(token);
  const closed = await page.evaluate(async ({ org, token }) => {
    const url = `${location.origin.replace(/^http/, 'ws')}/api/v1/orgs/${org}/feed/socket?token=${encodeURIComponent(token)}`;
    const ws = new WebSocket(url);
    await new Promise((ok, fail) => { ws.onopen = ok; ws.onerror = fail; });
    const done = new Promise((ok) => { ws.onclose = (e) => ok({ code: e.code, wasClean: e.wasClean }); });
    ws.close(1000, 'bye');
    return Promise.race([done, new Promise((ok) => setTimeout(() => ok({ code: 'timeout' }), 10000))]);
  }, { org: ORG, token });
  assert.deepEqual(closed, { code: 1000, wasClean: true });
  await page.close();
});
