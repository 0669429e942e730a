// The <herald-feed> widget in headless Chromium against a real `herald serve` (started by run.sh):
// events go in through the REST API, flow through ingest, matching and in_app dispatch, and the
// test looks at what a user sees. Screenshots go to tests/artifacts/.

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
