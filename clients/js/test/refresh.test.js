// When a new token is fetched: ahead of expiry on a monotonic timer, and on page events.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { realtimeAuth } from '../realtime-auth.js';
import { fakeClient, statusLog, testEnv, tokenResponse } from '../test-support/fakes.js';

function tokens(...lifetimes) {
  return lifetimes.map((seconds, i) => tokenResponse(`jwt-${i + 1}`, seconds));
}

test('refreshes refreshLeadSeconds before expiry, timed from receipt with expiresIn', async () => {
  const { env, net, clock } = testEnv({ script: tokens(900, 900, 900) });
  const client = fakeClient();
  const auth = realtimeAuth(client, { env, refreshLeadSeconds: 60 });
  await auth.ready();
  assert.deepEqual(clock.pending(), [840_000]);
  await clock.advance(839_999);
  assert.equal(net.calls.length, 1);
  await clock.advance(1);
  assert.equal(net.calls.length, 2);
  assert.deepEqual(client.jwts, ['jwt-1', 'jwt-2']);
  // The next one counts from the second token's receipt.
  await clock.advance(840_000);
  assert.equal(net.calls.length, 3);
  auth.stop();
});

test('the schedule ignores expiresAt and the wall clock', async () => {
  const realNow = Date.now;
  Date.now = () => {
    throw new Error('Date.now used for token timing');
  };
  try {
    const { env, net, clock } = testEnv({ script: tokens(300, 300) });
    const auth = realtimeAuth(fakeClient(), { env, refreshLeadSeconds: 60 });
    await auth.ready();
    assert.deepEqual(clock.pending(), [240_000]);
    await clock.advance(240_000);
    assert.equal(net.calls.length, 2);
    auth.stop();
  } finally {
    Date.now = realNow;
  }
});

test('a lifetime received later is measured from when it arrived', async () => {
  const { env, clock } = testEnv({
    script: [async () => {
      // Time passes while the request is on the wire (a slow network, a held lock).
      await clock.advance(5_000);
      return tokenResponse('jwt-1', 600);
    }],
  });
  const auth = realtimeAuth(fakeClient(), { env, refreshLeadSeconds: 60 });
  await auth.ready();
  assert.equal(clock.now(), 5_000);
  assert.deepEqual(clock.pending(), [540_000], '600 s from receipt, less the 60 s lead');
  auth.stop();
});

test('short tokens refresh at half-life, before they expire, whatever the minimum interval', async () => {
  {
    const { env, clock } = testEnv({ script: tokens(60) });
    const auth = realtimeAuth(fakeClient(), { env, refreshLeadSeconds: 60 });
    await auth.ready();
    assert.deepEqual(clock.pending(), [30_000]);
    auth.stop();
  }
  {
    const { env, clock } = testEnv({ script: tokens(4) });
    const auth = realtimeAuth(fakeClient(), { env, minRefreshIntervalSeconds: 10 });
    await auth.ready();
    assert.deepEqual(clock.pending(), [2_000]);
    auth.stop();
  }
});

test('every fresh token is reported, without the token', async () => {
  const { env, clock } = testEnv({ script: tokens(120, 120) });
  const log = statusLog();
  const auth = realtimeAuth(fakeClient(), { env, onStatus: log.onStatus });
  await auth.ready();
  await clock.advance(60_000);
  assert.deepEqual(log.events, [
    { status: 'authenticated', detail: { userId: 'user-1', expiresIn: 120 } },
    { status: 'authenticated', detail: { userId: 'user-1', expiresIn: 120 } },
  ]);
  auth.stop();
});

test('visibilitychange to visible refreshes; hidden does not', async () => {
  const { env, net, clock, document } = testEnv({ script: tokens(900, 900) });
  const client = fakeClient();
  const auth = realtimeAuth(client, { env });
  await auth.ready();
  await clock.advance(30_000);

  document.visibilityState = 'hidden';
  document.dispatchEvent(new Event('visibilitychange'));
  await clock.advance(0);
  assert.equal(net.calls.length, 1);

  document.visibilityState = 'visible';
  document.dispatchEvent(new Event('visibilitychange'));
  await clock.advance(0);
  assert.equal(net.calls.length, 2);
  assert.deepEqual(client.jwts, ['jwt-1', 'jwt-2']);
  // The refresh timer restarts from the new token.
  assert.deepEqual(clock.pending(), [840_000]);
  auth.stop();
});

test('online refreshes', async () => {
  const { env, net, clock, window } = testEnv({ script: tokens(900, 900) });
  const auth = realtimeAuth(fakeClient(), { env });
  await auth.ready();
  await clock.advance(30_000);
  window.dispatchEvent(new Event('online'));
  await clock.advance(0);
  assert.equal(net.calls.length, 2);
  auth.stop();
});

test('page events within the minimum interval of the last token do not refetch', async () => {
  const { env, net, clock, document, window } = testEnv({ script: tokens(900, 900) });
  const auth = realtimeAuth(fakeClient(), { env, minRefreshIntervalSeconds: 10 });
  await auth.ready();
  await clock.advance(9_999);
  document.dispatchEvent(new Event('visibilitychange'));
  window.dispatchEvent(new Event('online'));
  await clock.advance(0);
  assert.equal(net.calls.length, 1);
  await clock.advance(1);
  document.dispatchEvent(new Event('visibilitychange'));
  window.dispatchEvent(new Event('online'));
  await clock.advance(0);
  assert.equal(net.calls.length, 2, 'both events share one request');
  auth.stop();
});

test('refresh() fetches at once, even right after a token', async () => {
  const { env, net } = testEnv({ script: tokens(900, 900) });
  const client = fakeClient();
  const auth = realtimeAuth(client, { env });
  await auth.ready();
  await auth.refresh();
  assert.equal(net.calls.length, 2);
  assert.deepEqual(client.jwts, ['jwt-1', 'jwt-2']);
  auth.stop();
});

test('stop() removes the page listeners and the timer', async () => {
  const { env, net, clock, document, window } = testEnv({ script: tokens(900) });
  const auth = realtimeAuth(fakeClient(), { env });
  await auth.ready();
  assert.equal(document.listenerCount('visibilitychange'), 1);
  assert.equal(window.listenerCount('online'), 1);
  auth.stop();
  assert.equal(document.listenerCount('visibilitychange'), 0);
  assert.equal(window.listenerCount('online'), 0);
  assert.deepEqual(clock.pending(), []);
  await clock.advance(3600_000);
  assert.equal(net.calls.length, 1);
  assert.equal(auth.status, 'stopped');
});
