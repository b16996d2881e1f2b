// Transient failures: full-jitter backoff, Retry-After as a floor, recovery.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { realtimeAuth } from '../realtime-auth.js';
import {
  fakeClient,
  problemResponse,
  statusLog,
  testEnv,
  tokenResponse,
} from '../test-support/fakes.js';

test('429 with Retry-After waits at least that long, even when the jitter is 0', async () => {
  const { env, net, clock } = testEnv({
    random: () => 0,
    script: [problemResponse(429, 'rate_limited', { 'Retry-After': '30' }), tokenResponse('jwt-1')],
  });
  const log = statusLog();
  const client = fakeClient();
  const auth = realtimeAuth(client, { env, onStatus: log.onStatus });
  await clock.advance(0);
  assert.deepEqual(log.events, [
    {
      status: 'backing-off',
      detail: { code: 'rate_limited', httpStatus: 429, retryInMs: 30_000, attempt: 1 },
    },
  ]);
  await clock.advance(29_999);
  assert.equal(net.calls.length, 1);
  await clock.advance(1);
  assert.equal(net.calls.length, 2);
  await auth.ready();
  assert.deepEqual(client.jwts, ['jwt-1']);
  assert.equal(auth.status, 'authenticated');
  auth.stop();
});

test('Retry-After is a floor, not a ceiling: a longer jitter wins', async () => {
  const { env, clock } = testEnv({
    random: () => 0.99,
    script: Array.from({ length: 3 }, () =>
      problemResponse(503, 'upstream_unavailable', { 'Retry-After': '1' }),
    ),
  });
  const log = statusLog();
  const auth = realtimeAuth(fakeClient(), {
    env,
    onStatus: log.onStatus,
    backoffBaseMs: 1000,
    backoffCapMs: 60_000,
  });
  await clock.advance(0); // attempt 1: jitter 990 < 1000 floor
  await clock.advance(1000); // attempt 2: jitter 1980 > floor
  await clock.advance(1980); // attempt 3: jitter 3960
  assert.deepEqual(
    log.events.map((e) => e.detail.retryInMs),
    [1000, 1980, 3960],
  );
  auth.stop();
});

test('Retry-After as an HTTP-date', async () => {
  const realNow = Date.now;
  Date.now = () => Date.parse('2030-01-01T00:00:00Z');
  try {
    const { env, clock } = testEnv({
      random: () => 0,
      script: [problemResponse(429, 'upstream_rate_limited', { 'Retry-After': 'Tue, 01 Jan 2030 00:00:45 GMT' })],
    });
    const log = statusLog();
    const auth = realtimeAuth(fakeClient(), { env, onStatus: log.onStatus });
    await clock.advance(0);
    assert.equal(log.events[0].detail.retryInMs, 45_000);
    auth.stop();
  } finally {
    Date.now = realNow;
  }
});

test('full jitter: each delay is within [0, min(cap, base * 2^n)]', async () => {
  const base = 1000;
  const cap = 20_000;
  // (random() = 0 means an immediate retry; covered with Retry-After above.)
  for (const r of [0.001, 0.25, 0.5, 0.999999]) {
    const { env, clock } = testEnv({
      random: () => r,
      fallback: () => problemResponse(503, 'upstream_saturated'),
    });
    const log = statusLog();
    const auth = realtimeAuth(fakeClient(), {
      env,
      onStatus: log.onStatus,
      backoffBaseMs: base,
      backoffCapMs: cap,
    });
    await clock.advance(0);
    for (let n = 0; n < 8; n += 1) await clock.advance(log.events.at(-1).detail.retryInMs);
    const delays = log.events.map((e) => e.detail.retryInMs);
    assert.equal(delays.length, 9);
    delays.forEach((delay, n) => {
      const ceiling = Math.min(cap, base * 2 ** n);
      assert.ok(delay >= 0 && delay <= ceiling, `attempt ${n + 1}: ${delay} not in [0, ${ceiling}]`);
      assert.equal(delay, Math.round(r * ceiling));
    });
    assert.deepEqual(
      log.events.map((e) => e.detail.attempt),
      [1, 2, 3, 4, 5, 6, 7, 8, 9],
    );
    auth.stop();
  }
});

test('jitter is drawn afresh for every retry', async () => {
  const draws = [0.1, 0.9, 0.3];
  const { env, clock } = testEnv({
    random: () => draws.shift(),
    fallback: () => problemResponse(429, 'rate_limited'),
  });
  const log = statusLog();
  const auth = realtimeAuth(fakeClient(), { env, onStatus: log.onStatus });
  await clock.advance(0);
  await clock.advance(log.events.at(-1).detail.retryInMs);
  await clock.advance(log.events.at(-1).detail.retryInMs);
  assert.deepEqual(
    log.events.map((e) => e.detail.retryInMs),
    [100, 1800, 1200],
  );
  auth.stop();
});

test('502, 504 and network errors back off too; success resets the attempt count', async () => {
  const { env, clock } = testEnv({
    random: () => 0.5,
    script: [
      problemResponse(502, 'upstream_bad_response'),
      problemResponse(504, 'upstream_timeout'),
      new TypeError('Failed to fetch'),
      tokenResponse('jwt-1', 120),
      problemResponse(503, 'upstream_unavailable'),
    ],
  });
  const log = statusLog();
  const auth = realtimeAuth(fakeClient(), { env, onStatus: log.onStatus });
  await clock.advance(0);
  await clock.advance(500);
  await clock.advance(1000);
  await clock.advance(2000);
  assert.equal(auth.status, 'authenticated');
  await auth.refresh();
  assert.deepEqual(
    log.events.map((e) => [e.status, e.detail.code, e.detail.attempt]),
    [
      ['backing-off', 'upstream_bad_response', 1],
      ['backing-off', 'upstream_timeout', 2],
      ['backing-off', 'network_error', 3],
      ['authenticated', undefined, undefined],
      ['backing-off', 'upstream_unavailable', 1],
    ],
  );
  auth.stop();
});

test('page events and refresh() do not cut a server-requested wait short', async () => {
  const { env, net, clock, document, window } = testEnv({
    random: () => 0,
    script: [problemResponse(429, 'rate_limited', { 'Retry-After': '30' }), tokenResponse('jwt-1')],
  });
  const auth = realtimeAuth(fakeClient(), { env });
  await clock.advance(15_000);
  document.dispatchEvent(new Event('visibilitychange'));
  window.dispatchEvent(new Event('online'));
  await auth.refresh();
  await clock.advance(0);
  assert.equal(net.calls.length, 1);
  await clock.advance(15_000);
  assert.equal(net.calls.length, 2);
  auth.stop();
});

test('after a network error, coming online retries at once', async () => {
  const { env, net, clock, window } = testEnv({
    random: () => 0.99,
    script: [new TypeError('Failed to fetch'), new TypeError('Failed to fetch'), tokenResponse('jwt-1')],
  });
  const auth = realtimeAuth(fakeClient(), { env, backoffBaseMs: 4000 });
  await clock.advance(0);
  await clock.advance(3960);
  assert.equal(net.calls.length, 2);
  window.dispatchEvent(new Event('online'));
  await auth.ready();
  assert.equal(net.calls.length, 3);
  assert.equal(auth.status, 'authenticated');
  auth.stop();
});

test('ready() waits through backoff until a token arrives', async () => {
  const { env, clock } = testEnv({
    random: () => 0,
    script: [problemResponse(503, 'upstream_unavailable', { 'Retry-After': '5' }), tokenResponse('jwt-1')],
  });
  const auth = realtimeAuth(fakeClient(), { env });
  let ready = false;
  auth.ready().then(() => {
    ready = true;
  });
  await clock.advance(4_999);
  assert.equal(ready, false);
  await clock.advance(1);
  assert.equal(ready, true);
  auth.stop();
});
