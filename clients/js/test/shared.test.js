// The shared mode in Node: tabs (sharedRealtime) talk over real MessagePorts to one hub
// (createRealtimeHub) that drives the real Appwrite web SDK, with a fake WebSocket playing the
// server. What a SharedWorker adds (one hub for every tab) is played by connecting several tabs
// to one hub; the browser itself is in e2e/shared.test.js.
import assert from 'node:assert/strict';
import { afterEach, beforeEach, test } from 'node:test';
import { inspect } from 'node:util';

import * as appwrite from 'appwrite';

import { realtimeAuth } from '../realtime-auth.js';
import { createRealtimeHub, TAB_LOCK_PREFIX } from '../realtime-hub.js';
import { sharedRealtime } from '../shared-realtime.js';
import { FakeWebSocket, fakeLocks, problemResponse, testEnv, tokenResponse, until, useRealSdk } from '../test-support/fakes.js';

const SECRET = 'eyJhbGciOiJIUzI1NiJ9.SECRET-MARKER-41c.c2ln';
const ACCOUNT = { $id: 'user-1', name: 'Ada' };
const CONFIG = { endpoint: 'https://appwrite.test/v1', project: 'proj' };
const cleanups = useRealSdk({ beforeEach, afterEach });

/** A hub whose helper fetches from `script`; `tab()` opens a tab on it, as a SharedWorker would. */
function browser({ script, locks = null } = {}) {
  const { env, net, clock } = testEnv({ script });
  const hub = createRealtimeHub(appwrite, {
    locks,
    realtimeAuth: (client, options) => realtimeAuth(client, { ...options, env }),
  });
  const seen = [];
  function tab(options = {}) {
    const channel = new MessageChannel();
    hub.connect(channel.port2);
    const statuses = [];
    const sockets = [];
    const live = sharedRealtime({
      ...CONFIG,
      worker: () => ({ port: spy(channel.port1, seen), addEventListener() {} }),
      onStatus: (status, detail) => statuses.push({ status, detail }),
      onSocket: (socket) => sockets.push(socket),
      ...options,
    });
    cleanups.push(() => {
      live.close();
      channel.port2.close();
    });
    return { live, statuses, sockets };
  }
  return { hub, tab, net, clock, seen };
}

/** Record every message the hub sends to this tab. */
function spy(port, seen) {
  const deliver = (message) => seen.push(message);
  return new Proxy(port, {
    set(target, key, value) {
      if (key === 'onmessage') {
        target.onmessage = (event) => {
          deliver(event.data);
          value(event);
        };
        return true;
      }
      target[key] = value;
      return true;
    },
    get(target, key) {
      const value = target[key];
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

function connected(ws, user = ACCOUNT) {
  ws.serverOpen();
  ws.serverSend({ type: 'connected', data: { channels: [], user } });
}

/** Each tab subscribes to `account`; resolves with the one socket once Appwrite has them all. */
async function subscribedOnOneSocket(tabs) {
  const pending = tabs.map(({ live }) => live.subscribe(['account'], () => {}));
  await until(() => FakeWebSocket.instances.length === 1);
  const ws = FakeWebSocket.instances[0];
  connected(ws);
  await Promise.all(pending);
  return ws;
}

/** The subscribe frames the SDK sent on `ws`, as {subscriptionId, channels}. */
function subscribeRows(ws) {
  return ws.sent.map((frame) => JSON.parse(frame)).filter((frame) => frame.type === 'subscribe').flatMap((frame) => frame.data);
}

test('two tabs share one socket and one token; each gets the events of its own subscriptions', async () => {
  const { tab, net, clock } = browser({ script: [tokenResponse('jwt-1', 60)] });
  const [a, b] = [tab(), tab()];
  const got = { a: [], b: [] };
  const subscribedA = a.live.subscribe(['account'], (event) => got.a.push(event));
  const subscribedB = b.live.subscribe(['files'], (event) => got.b.push(event));
  await until(() => FakeWebSocket.instances.length === 1);
  const ws = FakeWebSocket.instances[0];
  assert.equal(ws.jwtParam(), 'jwt-1');
  connected(ws);
  await Promise.all([subscribedA, subscribedB]);
  await clock.advance(0);
  assert.equal(net.calls.length, 1, 'one token for the one socket');
  await until(() => subscribeRows(ws).length === 2);
  const [rowA, rowB] = subscribeRows(ws);
  assert.deepEqual([rowA.channels, rowB.channels], [['account'], ['files']]);

  ws.serverSend({ type: 'event', data: { events: ['e.1'], channels: ['account'], payload: { n: 1 }, subscriptions: [rowA.subscriptionId] } });
  ws.serverSend({ type: 'event', data: { events: ['e.2'], channels: ['files'], payload: { n: 2 }, subscriptions: [rowB.subscriptionId] } });
  await until(() => got.a.length === 1 && got.b.length === 1);
  assert.deepEqual([got.a[0].payload, got.b[0].payload], [{ n: 1 }, { n: 2 }]);
  assert.equal(FakeWebSocket.instances.length, 1);
  assert.deepEqual(a.statuses.map((s) => s.status), ['authenticated']);
  assert.deepEqual(b.statuses.map((s) => s.status), ['authenticated']);
  assert.deepEqual(a.sockets.at(-1), { state: 'connected', user: { id: 'user-1', name: 'Ada' } });
  assert.equal(a.live.mode, 'shared');
});

test('a tab that leaves ends its subscriptions; the last one to leave closes the socket and stops minting', async () => {
  const { hub, tab, net, clock } = browser({ script: [tokenResponse('jwt-1', 60)] });
  const [a, b] = [tab(), tab()];
  const ws = await subscribedOnOneSocket([a, b]);
  a.live.close();
  await until(() => ws.sent.some((frame) => frame.includes('"unsubscribe"')));
  assert.equal(hub.tabCount, 1);
  assert.equal(ws.readyState, FakeWebSocket.OPEN, 'the other tab keeps the socket');
  b.live.close();
  await until(() => ws.readyState === FakeWebSocket.CLOSED);
  assert.equal(hub.tabCount, 0);
  await clock.advance(3600_000);
  assert.equal(net.calls.length, 1);
});

test('a tab that dies without saying bye leaves when the hub can take its lock', async () => {
  const locks = fakeLocks();
  const { hub } = browser({ script: [tokenResponse('jwt-1', 60)], locks });
  // The test plays the tab on a raw port: it holds its lock, says hello and subscribes ...
  const life = locks.hold(`${TAB_LOCK_PREFIX}tab-1`);
  await life.taken;
  const channel = new MessageChannel();
  hub.connect(channel.port2);
  cleanups.push(() => channel.port1.close());
  channel.port1.onmessage = () => {};
  channel.port1.postMessage({ type: 'hello', tabId: 'tab-1', config: CONFIG });
  channel.port1.postMessage({ type: 'subscribe', tabId: 'tab-1', id: 1, channels: ['account'], queries: [] });
  await until(() => FakeWebSocket.instances.length === 1);
  const ws = FakeWebSocket.instances[0];
  connected(ws);
  await until(() => subscribeRows(ws).length === 1);
  assert.equal(hub.tabCount, 1);
  // ... then dies: no bye, only its lock released.
  life.release();
  await until(() => hub.tabCount === 0);
  await until(() => ws.readyState === FakeWebSocket.CLOSED);
});

test('signed out: every tab is told, the socket is closed, and a tab that says hello again starts afresh', async () => {
  const { tab, net, clock } = browser({
    script: [tokenResponse('jwt-1', 60), problemResponse(401, 'session_missing'), tokenResponse('jwt-2', 60)],
  });
  const [a, b] = [tab(), tab()];
  const ws = await subscribedOnOneSocket([a, b]);
  await a.live.refresh();
  await until(() => a.statuses.length === 2 && b.statuses.length === 2);
  await clock.advance(0);
  assert.deepEqual(b.statuses.at(-1), { status: 'signed-out', detail: { code: 'session_missing', httpStatus: 401 } });
  await until(() => ws.readyState === FakeWebSocket.CLOSED);

  // Signed in again, a reloaded tab starts a new session on the hub.
  const c = tab();
  const again = c.live.subscribe(['account'], () => {});
  await until(() => FakeWebSocket.instances.length === 2);
  assert.equal(FakeWebSocket.instances[1].jwtParam(), 'jwt-2');
  connected(FakeWebSocket.instances[1]);
  await again;
  assert.equal(net.calls.length, 3);
  assert.deepEqual(c.statuses.map((s) => s.status), ['authenticated']);
});

for (const reason of ['signed_out', 'session_ended']) {
  test(`on the relay, a socket closed 1008 '${reason}' signs every tab out`, async () => {
    const { tab } = browser({ script: [] });
    const relayEndpoint = 'wss://app.test/v1';
    const [a, b] = [tab({ relayEndpoint }), tab({ relayEndpoint })];
    const ws = await subscribedOnOneSocket([a, b]);
    ws.serverClose(1008, reason);
    await until(() => b.statuses.at(-1)?.status === 'signed-out');
    assert.deepEqual(a.statuses.at(-1), { status: 'signed-out', detail: { code: reason } });
  });
}

test('on the relay, other closes (1008 for a policy, 1006) are not a sign-out', async () => {
  const { tab } = browser({ script: [] });
  const a = tab({ relayEndpoint: 'wss://app.test/v1' });
  const ws = await subscribedOnOneSocket([a]);
  ws.serverClose(1008, 'too_many_subscriptions');
  await until(() => a.sockets.at(-1)?.state === 'closed');
  assert.ok(!a.statuses.some((s) => s.status === 'signed-out'), inspect(a.statuses));
});

test('a tab whose settings differ from the running hub\'s runs its own hub', async () => {
  const { tab } = browser({ script: [tokenResponse('jwt-1', 60), tokenResponse('jwt-2', 60)] });
  const a = tab();
  const first = a.live.subscribe(['account'], () => {});
  await until(() => FakeWebSocket.instances.length === 1);
  connected(FakeWebSocket.instances[0]);
  await first;
  const other = tab({ project: 'other', sdk: appwrite });
  await until(() => other.live.mode === 'in-page');
  assert.equal(other.live.mode, 'in-page');
});

test('without a SharedWorker the tab runs the hub itself, with the same API', async () => {
  const fetched = [];
  const live = sharedRealtime({
    ...CONFIG,
    tokenUrl: 'https://service.test/v1/realtime/token',
    worker: () => new globalThis.SharedWorker('/worker.js'), // not defined in Node: throws
    sdk: appwrite,
  });
  cleanups.push(() => live.close());
  // The in-page hub's helper uses the global fetch: answer it here.
  const realFetch = globalThis.fetch;
  globalThis.fetch = async (url) => {
    fetched.push(String(url));
    return tokenResponse('jwt-1', 60);
  };
  cleanups.push(() => {
    globalThis.fetch = realFetch;
  });
  const subscribed = live.subscribe(['account'], () => {});
  await until(() => FakeWebSocket.instances.length === 1);
  connected(FakeWebSocket.instances[0]);
  await subscribed;
  assert.equal(live.mode, 'in-page');
  assert.deepEqual(fetched, ['https://service.test/v1/realtime/token']);
});

test('no message to a tab carries the token', async () => {
  const { tab, seen, clock } = browser({ script: [tokenResponse(SECRET, 60), tokenResponse(SECRET, 60)] });
  const { live } = tab();
  const subscribed = live.subscribe(['account'], () => {});
  await until(() => FakeWebSocket.instances.length === 1);
  connected(FakeWebSocket.instances[0]);
  await subscribed;
  FakeWebSocket.instances[0].serverClose(1006); // a reconnect: another token
  await clock.advance(0);
  await until(() => FakeWebSocket.instances.length === 2);
  assert.ok(seen.length >= 4, 'the tab got welcome, status, socket and subscribed messages');
  assert.ok(!inspect(seen, { depth: 10 }).includes('SECRET-MARKER'), 'a message to the tab carried the JWT');
});
