// Many tabs of one browser, in Chromium, against the demo's real defaults (rate limits included):
// with the helper alone every tab holds a socket and mints one token per socket open, and nothing
// while its socket stays open; in the shared mode (?shared=1) a SharedWorker holds one socket and
// one helper for every tab. Mints and sockets are counted where Appwrite counts them (the
// emulator's JWTs issued and Realtime connects), token answers where each page got them.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pageState, publishMarked, record, setUp, signIn, sleep, waitFor, waitForEvent } from './support.js';

const stats = (demo) => demo.control('/stats');
const hasStatus = (state, status) => state.statuses.some((entry) => entry.status === status);

/** Sign in on the first tab, then open `count - 1` more tabs of the same page; resolves once every tab is subscribed. */
async function openTabs({ demo, browser, page, query, count }) {
  const tabs = [{ page, seen: record(page) }];
  await signIn(page, demo.baseUrl, query);
  for (let i = 1; i < count; i += 1) {
    const next = await browser.context.newPage();
    tabs.push({ page: next, seen: record(next) });
    await next.goto(`${demo.baseUrl}/?${query}`);
  }
  await waitFor(`${count} tabs subscribed`, async () => (await Promise.all(tabs.map((tab) => pageState(tab.page)))).every((s) => s.subscribed), {
    timeoutMs: 60_000,
    intervalMs: 250,
  });
  const { config } = await pageState(page);
  return { tabs, userId: config.user.id };
}

/** An event for the user reaches every tab. */
async function everyTabReceives(demo, tabs, userId) {
  const { marker } = await publishMarked(demo, { userId });
  await Promise.all(tabs.map((tab) => waitForEvent(tab.page, marker, 15_000)));
}

/** Appwrite drops every socket of the user at once (a deploy, a network blip); resolves once they are all back. */
async function reconnectStorm(demo, userId, sockets) {
  const { closed } = await demo.control('/realtime/disconnect', { userId, code: 1011 });
  assert.equal(closed, sockets, 'every socket dropped');
  await waitFor(`${sockets} sockets back`, async () => (await demo.control('/realtime/connections?open=1')).filter((c) => c.userId === userId).length === sockets, {
    timeoutMs: 60_000,
    intervalMs: 250,
  });
}

const tokenAnswers = (tabs) => tabs.flatMap((tab) => tab.seen.tokenResponses().map((r) => r.status));

test('8 tabs with the helper: one token per socket opened, none while the sockets stay open, no 429 through a reconnect storm', async (t) => {
  // Tokens live 4 s: a helper minting on a timer would mint every 2 s in every tab.
  const { demo, browser, page } = await setUp(t, { env: { TOKEN_TTL_SECONDS: '4' } });
  const { tabs, userId } = await openTabs({ demo, browser, page, query: 'via=jwt', count: 8 });
  const opened = await stats(demo);
  assert.equal(opened.jwtsIssued, 8, 'one token per tab');
  assert.equal(opened.realtime.connects, 8, 'one socket per tab');

  await sleep(12_000); // three token lifetimes with every socket open
  assert.equal((await stats(demo)).jwtsIssued, 8, 'no token while the sockets are open');

  await reconnectStorm(demo, userId, 8);
  await everyTabReceives(demo, tabs, userId);
  const after = await stats(demo);
  // Each reconnect's token was minted when its socket closed; a handshake that still found an
  // expired one (the SDK reconnects after 1 s) was refused and counted as a socket, not a mint.
  assert.equal(after.jwtsIssued, 16, 'one token per tab for the reconnect');
  assert.deepEqual([...new Set(tokenAnswers(tabs))], [200], 'no 429 (the default per-session limit)');
  for (const tab of tabs) {
    const state = await pageState(tab.page);
    assert.ok(!hasStatus(state, 'backing-off'), 'no tab backed off');
    assert.equal(state.statuses.at(-1).status, 'authenticated');
  }
});

test('the shared mode: 4 tabs, one socket and one token; a tab closing; the worker\'s socket dropped; sign-out everywhere', async (t) => {
  const { demo, browser, page } = await setUp(t);
  const { tabs, userId } = await openTabs({ demo, browser, page, query: 'via=jwt&shared=1', count: 4 });
  for (const tab of tabs) assert.equal((await pageState(tab.page)).live.mode, 'shared');
  let now = await stats(demo);
  assert.deepEqual([now.jwtsIssued, now.realtime.connects], [1, 1], 'one token and one socket for the browser');
  assert.ok(tabs.every((tab) => tab.seen.sockets.length === 0 && tab.seen.tokenResponses().length === 0), 'no socket and no token in any page');
  await everyTabReceives(demo, tabs, userId);

  // A tab closes: the others keep the socket and their events.
  await tabs.pop().page.close();
  await everyTabReceives(demo, tabs, userId);
  now = await stats(demo);
  assert.deepEqual([now.jwtsIssued, now.realtime.connects, now.realtime.open], [1, 1, 1]);

  // Appwrite drops the worker's socket: one reconnect, one token, every tab receives again.
  await reconnectStorm(demo, userId, 1);
  await everyTabReceives(demo, tabs, userId);
  now = await stats(demo);
  assert.deepEqual([now.jwtsIssued, now.realtime.connects], [2, 2]);

  // Signed out in one tab: the hub's helper learns it, every tab says so, the socket is closed.
  await tabs[0].page.locator('#logout').click();
  for (const tab of tabs) {
    await waitFor('the tab to say signed-out', async () => hasStatus(await pageState(tab.page), 'signed-out'));
    assert.ok(await tab.page.locator('#signin').isVisible());
  }
  await waitFor('the shared socket to close', async () => (await stats(demo)).realtime.open === 0);
  // The hub never put the token anywhere a page could read it.
  for (const tab of tabs) {
    const stored = await tab.page.evaluate(async () => ({
      local: Object.keys(localStorage),
      session: Object.keys(sessionStorage),
      databases: (await indexedDB.databases()).map((db) => db.name),
    }));
    assert.deepEqual(stored, { local: [], session: [], databases: [] });
  }
});

test('the shared mode, the last tab closing: the socket closes', async (t) => {
  const { demo, browser, page } = await setUp(t);
  const { tabs } = await openTabs({ demo, browser, page, query: 'via=jwt&shared=1', count: 2 });
  assert.equal((await stats(demo)).realtime.open, 1);
  for (const tab of tabs) await tab.page.close();
  await waitFor('the socket to close with the last tab', async () => (await stats(demo)).realtime.open === 0, { timeoutMs: 15_000 });
});

test('the shared mode without SharedWorker: each tab runs the hub itself and still gets its events', async (t) => {
  const { demo, browser, page } = await setUp(t);
  await browser.context.addInitScript(() => {
    delete window.SharedWorker;
  });
  const { tabs, userId } = await openTabs({ demo, browser, page, query: 'via=jwt&shared=1', count: 2 });
  for (const tab of tabs) assert.equal((await pageState(tab.page)).live.mode, 'in-page');
  const now = await stats(demo);
  assert.deepEqual([now.jwtsIssued, now.realtime.connects], [2, 2], 'a socket and a token per tab, as with the helper alone');
  await everyTabReceives(demo, tabs, userId);
});

test('the shared mode through the relay: 3 tabs, one relayed socket, no token anywhere', async (t) => {
  const { demo, browser, page } = await setUp(t);
  const { tabs, userId } = await openTabs({ demo, browser, page, query: 'via=relay&shared=1', count: 3 });
  for (const tab of tabs) assert.equal((await pageState(tab.page)).live.mode, 'shared');
  const now = await stats(demo);
  assert.deepEqual([now.jwtsIssued, now.realtime.open], [0, 1], 'no token; one upstream socket for the browser');
  await everyTabReceives(demo, tabs, userId);
});

test('30 tabs: a reconnect storm costs one token per socket, with the helper and in the shared mode', async (t) => {
  const { demo, browser, page } = await setUp(t);
  const { tabs, userId } = await openTabs({ demo, browser, page, query: 'via=jwt', count: 30 });
  const before = await stats(demo);
  assert.deepEqual([before.jwtsIssued, before.realtime.connects], [30, 30]);
  await reconnectStorm(demo, userId, 30);
  const after = await stats(demo);
  assert.equal(after.jwtsIssued - before.jwtsIssued, 30, 'one token per socket for its reconnect');
  assert.deepEqual([...new Set(tokenAnswers(tabs))], [200], 'no 429');

  // The same browser, every tab on the shared socket instead.
  for (const tab of tabs) await tab.page.goto(`${demo.baseUrl}/?via=jwt&shared=1`);
  await waitFor('30 shared tabs subscribed', async () => (await Promise.all(tabs.map((tab) => pageState(tab.page)))).every((s) => s.subscribed), {
    timeoutMs: 60_000,
    intervalMs: 250,
  });
  await waitFor('one socket left', async () => (await stats(demo)).realtime.open === 1, { timeoutMs: 15_000 });
  const shared = await stats(demo);
  await reconnectStorm(demo, userId, 1);
  assert.equal((await stats(demo)).jwtsIssued - shared.jwtsIssued, 1, 'one token for the one socket');
  await everyTabReceives(demo, tabs, userId);
});
