// When a token is minted: once before the first socket, then only when a socket is about to
// open (after a close, a refused JWT, or a page event while a reconnect is pending). Never on a
// timer while a socket is open. The SDK is played by fakeRealtime(); sdk.test.js drives the real one.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { realtimeAuth } from '../realtime-auth.js';
import { fakeClient, fakeRealtime, problemResponse, statusLog, testEnv, tokenResponse } from '../test-support/fakes.js';

function tokens(...lifetimes) {
  return lifetimes.map((seconds, i) => tokenResponse(`jwt-${i + 1}`, seconds));
}

/** A helper watching one fake Realtime service, with its first token set. */
async function started({ script = tokens(60, 60, 60, 60), options = {} } = {}) {
  const setup = testEnv({ script });
  const client = fakeClient();
  const realtime = fakeRealtime(client);
  const log = statusLog();
  const auth = realtimeAuth(client, { env: setup.env, realtime, onStatus: log.onStatus, ...options });
  await auth.ready();
  return { ...setup, client, realtime, log, auth };
}

const jwtOf = (socket) => new URL(socket.url).searchParams.get('jwt');

test('one token before the first socket, then none for hours while the socket is open', async () => {
  const { net, clock, realtime, auth } = await started();
  assert.deepEqual(clock.pending(), [], 'no refresh timer');
  const socket = realtime.open();
  assert.equal(jwtOf(socket), 'jwt-1');
  await clock.advance(3 * 3600_000);
  assert.equal(net.calls.length, 1);
  auth.stop();
});

test('a socket that closes gets its reconnect token minted at once, inside the SDK\'s reconnect delay', async () => {
  const { net, clock, client, realtime, auth } = await started();
  const first = realtime.open();
  await clock.advance(600_000);
  first.serverClose(1006);
  await clock.advance(0);
  assert.equal(net.calls.length, 2);
  assert.equal(client.config.jwt, 'jwt-2');
  assert.equal(jwtOf(realtime.open()), 'jwt-2', 'the reconnect carries the new token');
  auth.stop();
});

test('a close while a token no socket has carried is waiting mints nothing', async () => {
  const { net, clock, realtime, auth } = await started();
  const first = realtime.open();
  await auth.refresh(); // jwt-2, not yet on any socket
  first.serverClose(1006);
  await clock.advance(0);
  assert.equal(net.calls.length, 2);
  auth.stop();
});

test('an unused token past half its life is replaced when a socket closes', async () => {
  const { net, clock, realtime, auth } = await started({ script: tokens(20, 20, 20) });
  const first = realtime.open();
  await auth.refresh(); // jwt-2 at 0 s, good for the next socket until 10 s
  await clock.advance(10_000);
  first.serverClose(1006);
  await clock.advance(0);
  assert.equal(net.calls.length, 3);
  auth.stop();
});

test('no token when the SDK opens no other socket: disconnect(), or a successor already open', async () => {
  const { net, clock, realtime, auth } = await started();
  const first = realtime.open();
  const second = realtime.open(); // the SDK replaced the socket before the old one's close event
  first.serverClose(1000);
  await clock.advance(0);
  assert.equal(net.calls.length, 1, 'replaced');
  await realtime.disconnect();
  await clock.advance(0);
  assert.equal(second.readyState, 3);
  assert.equal(net.calls.length, 1, 'nothing subscribed');
  auth.stop();
});

test('page events mint only while a socket is about to open, and only if no fresh token waits', async () => {
  const { net, clock, realtime, document, window, auth } = await started({ script: tokens(20, 20, 20) });
  const first = realtime.open();
  await clock.advance(60_000);
  document.dispatchEvent(new Event('visibilitychange'));
  window.dispatchEvent(new Event('online'));
  await clock.advance(0);
  assert.equal(net.calls.length, 1, 'a socket is open: nothing to mint for');

  first.serverClose(1006); // mints jwt-2 for the reconnect
  await clock.advance(0);
  window.dispatchEvent(new Event('online'));
  await clock.advance(0);
  assert.equal(net.calls.length, 2, 'jwt-2 waits for the reconnect');

  // The tab slept past jwt-2's half-life before the SDK reconnected.
  await clock.advance(11_000);
  document.visibilityState = 'hidden';
  document.dispatchEvent(new Event('visibilitychange'));
  await clock.advance(0);
  assert.equal(net.calls.length, 2, 'hidden: nothing');
  document.visibilityState = 'visible';
  document.dispatchEvent(new Event('visibilitychange'));
  await clock.advance(0);
  assert.equal(net.calls.length, 3);

  assert.equal(jwtOf(realtime.open()), 'jwt-3');
  window.dispatchEvent(new Event('online'));
  await clock.advance(0);
  assert.equal(net.calls.length, 3, 'open again: nothing');
  auth.stop();
});

test('a JWT refused at the handshake (error frame 401) is replaced before the SDK reconnects', async () => {
  const { net, clock, client, realtime, auth } = await started({ script: tokens(60, 60) });
  await clock.advance(70_000); // the page subscribed long after ready(): jwt-1 expired
  const socket = realtime.open();
  socket.serverSend({ type: 'error', data: { code: 401, message: 'Token expired.' } });
  socket.serverClose(1006);
  await clock.advance(0);
  assert.equal(net.calls.length, 2, 'one token for the refusal and the close together');
  assert.equal(client.config.jwt, 'jwt-2');
  auth.stop();
});

test('a refused token younger than the minimum interval is replaced only after it', async () => {
  const { net, clock, realtime, auth } = await started({ options: { minRefreshIntervalSeconds: 10 } });
  await clock.advance(4_000);
  const socket = realtime.open();
  socket.serverSend({ type: 'error', data: { code: 401, message: 'Token expired.' } });
  socket.serverClose(1006);
  await clock.advance(0);
  assert.equal(net.calls.length, 1);
  assert.deepEqual(clock.pending(), [6_000], '10 s after the refused token arrived');
  await clock.advance(6_000);
  assert.equal(net.calls.length, 2);
  auth.stop();
});

test('freshness is measured from receipt on the monotonic clock, never the wall clock', async () => {
  const realNow = Date.now;
  Date.now = () => {
    throw new Error('Date.now used for token timing');
  };
  try {
    const { env, net, clock } = testEnv({
      script: [
        async () => {
          await clock.advance(5_000); // on the wire for 5 s
          return tokenResponse('jwt-1', 20);
        },
        tokenResponse('jwt-2', 20),
      ],
    });
    const client = fakeClient();
    const [a, b] = [fakeRealtime(client), fakeRealtime(client)];
    const auth = realtimeAuth(client, { env, realtime: [a, b] });
    // Both sockets opened before the token: neither carried it.
    const [early, later] = [a.open(), b.open()];
    await auth.ready();
    assert.equal(clock.now(), 5_000);
    await clock.advance(9_999);
    early.serverClose(1006);
    await clock.advance(0);
    assert.equal(net.calls.length, 1, 'jwt-1 arrived at 5 s: good for the next socket until 15 s');
    await clock.advance(1);
    later.serverClose(1006);
    await clock.advance(0);
    assert.equal(net.calls.length, 2);
    auth.stop();
  } finally {
    Date.now = realNow;
  }
});

test('every fresh token is reported, without the token', async () => {
  const { clock, realtime, log, auth } = await started({ script: tokens(120, 120) });
  realtime.open().serverClose(1006);
  await clock.advance(0);
  assert.deepEqual(log.events, [
    { status: 'authenticated', detail: { userId: 'user-1', expiresIn: 120 } },
    { status: 'authenticated', detail: { userId: 'user-1', expiresIn: 120 } },
  ]);
  auth.stop();
});

test('refresh() fetches at once, even right after a token', async () => {
  const { net, client, auth } = await started();
  await auth.refresh();
  assert.equal(net.calls.length, 2);
  assert.deepEqual(client.jwts, ['jwt-1', 'jwt-2']);
  auth.stop();
});

test('a 429 on a reconnect\'s token backs off, and the reconnect after it gets the token', async () => {
  const { net, clock, client, realtime, log, auth } = await started({
    script: [tokenResponse('jwt-1', 60), problemResponse(429, 'rate_limited', { 'Retry-After': '3' }), tokenResponse('jwt-2', 60)],
  });
  realtime.open().serverClose(1006);
  await clock.advance(0);
  assert.deepEqual(log.statuses(), ['authenticated', 'backing-off']);
  await clock.advance(3_000);
  assert.equal(net.calls.length, 3);
  assert.equal(client.config.jwt, 'jwt-2');
  auth.stop();
});

test('stop() removes the page and socket listeners and every timer', async () => {
  const { net, clock, document, window, realtime, auth } = await started();
  const socket = realtime.open();
  assert.equal(document.listenerCount('visibilitychange'), 1);
  assert.equal(window.listenerCount('online'), 1);
  auth.stop();
  assert.equal(document.listenerCount('visibilitychange'), 0);
  assert.equal(window.listenerCount('online'), 0);
  socket.serverClose(1006);
  await clock.advance(3600_000);
  assert.deepEqual(clock.pending(), []);
  assert.equal(net.calls.length, 1);
  assert.equal(auth.status, 'stopped');
});
