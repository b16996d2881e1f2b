// The token request itself: its shape, one at a time (dedupe, Web Lock), and final answers.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { realtimeAuth, RealtimeAuthError, DEFAULT_TOKEN_URL } from '../realtime-auth.js';
import {
  deferred,
  fakeClient,
  flush,
  problemResponse,
  statusLog,
  testEnv,
  tokenResponse,
} from '../test-support/fakes.js';

test('POSTs to the default token URL with credentials and the CSRF header', async () => {
  const { env, net } = testEnv({ script: [tokenResponse('jwt-1', 900)] });
  const client = fakeClient();
  const auth = realtimeAuth(client, { env });
  await auth.ready();
  assert.equal(net.calls.length, 1);
  const { url, init } = net.calls[0];
  assert.equal(url, DEFAULT_TOKEN_URL);
  assert.equal(url, '/v1/realtime/token');
  assert.equal(init.method, 'POST');
  assert.equal(init.credentials, 'include');
  assert.equal(init.headers['X-CSRF'], '1');
  assert.deepEqual(client.jwts, ['jwt-1']);
  assert.equal(auth.status, 'authenticated');
  auth.stop();
});

test('tokenUrl is configurable', async () => {
  const { env, net } = testEnv({ script: [tokenResponse('jwt-1')] });
  const auth = realtimeAuth(fakeClient(), { env, tokenUrl: '/auth/realtime-token' });
  await auth.ready();
  assert.equal(net.calls[0].url, '/auth/realtime-token');
  auth.stop();
});

test('concurrent callers share one request in flight', async () => {
  const gate = deferred();
  const { env, net } = testEnv({ script: [() => gate.promise] });
  const client = fakeClient();
  const log = statusLog();
  const auth = realtimeAuth(client, { env, onStatus: log.onStatus });
  const waits = [auth.refresh(), auth.refresh(), auth.ready(), auth.refresh()];
  await flush();
  assert.equal(net.calls.length, 1, 'one fetch for four callers');
  gate.resolve(tokenResponse('jwt-1'));
  await Promise.all(waits);
  assert.equal(net.calls.length, 1);
  assert.deepEqual(client.jwts, ['jwt-1']);
  assert.deepEqual(log.statuses(), ['authenticated']);
  auth.stop();
});

test('tabs do not queue for each other: the fetch starts at once, in the same tick', async () => {
  // In a reconnect storm every tab's token must arrive within the SDK's 1 s reconnect delay; a
  // queue across tabs (a Web Lock, as helpers before this one took) would defer this call.
  const { env, net } = testEnv({ script: [tokenResponse('jwt-1')] });
  const auth = realtimeAuth(fakeClient(), { env });
  assert.equal(net.calls.length, 1);
  await auth.ready();
  auth.stop();
});

for (const code of ['session_missing', 'session_invalid', 'mfa_required']) {
  test(`401 ${code}: signed-out, ready() rejects, nothing runs afterwards`, async () => {
    const { env, net, clock, document, window } = testEnv({ script: [problemResponse(401, code)] });
    const log = statusLog();
    const client = fakeClient();
    const auth = realtimeAuth(client, { env, onStatus: log.onStatus });
    await assert.rejects(auth.ready(), (err) => {
      assert.ok(err instanceof RealtimeAuthError);
      assert.equal(err.status, 'signed-out');
      assert.equal(err.code, code);
      assert.equal(err.httpStatus, 401);
      return true;
    });
    assert.deepEqual(log.events, [{ status: 'signed-out', detail: { code, httpStatus: 401 } }]);
    assert.equal(auth.status, 'signed-out');
    assert.deepEqual(clock.pending(), [], 'no timer left');
    assert.equal(document.listenerCount('visibilitychange'), 0);
    assert.equal(window.listenerCount('online'), 0);

    document.dispatchEvent(new Event('visibilitychange'));
    window.dispatchEvent(new Event('online'));
    await auth.refresh();
    await clock.advance(24 * 3600 * 1000);
    assert.equal(net.calls.length, 1, 'no retry loop');
    assert.deepEqual(client.jwts, []);
    assert.equal(log.events.length, 1);
  });
}

test('401 after a token was set is final: nothing is fetched again', async () => {
  const { env, net, clock } = testEnv({
    script: [tokenResponse('jwt-1', 120), problemResponse(401, 'session_invalid')],
  });
  const log = statusLog();
  const auth = realtimeAuth(fakeClient(), { env, onStatus: log.onStatus });
  await auth.ready();
  await auth.refresh();
  assert.equal(net.calls.length, 2);
  assert.deepEqual(log.statuses(), ['authenticated', 'signed-out']);
  await clock.advance(3600_000);
  assert.equal(net.calls.length, 2);
});

test('403 user_blocked is signed-out; other 403s are a final error', async () => {
  {
    const { env } = testEnv({ script: [problemResponse(403, 'user_blocked')] });
    const log = statusLog();
    const auth = realtimeAuth(fakeClient(), { env, onStatus: log.onStatus });
    await assert.rejects(auth.ready(), { status: 'signed-out', code: 'user_blocked' });
  }
  for (const code of ['csrf_header_missing', 'origin_not_allowed']) {
    const { env, net, clock } = testEnv({ script: [problemResponse(403, code)] });
    const log = statusLog();
    const auth = realtimeAuth(fakeClient(), { env, onStatus: log.onStatus });
    await assert.rejects(auth.ready(), { status: 'error', code });
    assert.deepEqual(log.events, [{ status: 'error', detail: { code, httpStatus: 403 } }]);
    await clock.advance(3600_000);
    assert.equal(net.calls.length, 1);
  }
});

test('a 200 without a usable token is a final error, not a retry loop', async () => {
  for (const body of [{ jwt: '', expiresIn: 900 }, { jwt: 'x' }, { jwt: 'x', expiresIn: 0 }, 'nope']) {
    const res = new Response(typeof body === 'string' ? body : JSON.stringify(body), { status: 200 });
    const { env, net, clock } = testEnv({ script: [res] });
    const client = fakeClient();
    const auth = realtimeAuth(client, { env });
    await assert.rejects(auth.ready(), { status: 'error', code: 'bad_response' });
    await clock.advance(3600_000);
    assert.equal(net.calls.length, 1);
    assert.deepEqual(client.jwts, []);
  }
});

test('a problem code that is not one of ours is replaced by the HTTP status', async () => {
  const res = new Response(JSON.stringify({ code: 'Bearer abc.def <script>' }), { status: 418 });
  const { env } = testEnv({ script: [res] });
  const auth = realtimeAuth(fakeClient(), { env });
  await assert.rejects(auth.ready(), { status: 'error', code: 'http_418' });
});

test('stop() aborts the request in flight and never sets its token', async () => {
  const gate = deferred();
  let signal;
  const { env, clock } = testEnv({
    script: [
      (_url, init) => {
        signal = init.signal;
        return gate.promise;
      },
    ],
  });
  const client = fakeClient();
  const log = statusLog();
  const auth = realtimeAuth(client, { env, onStatus: log.onStatus });
  await flush();
  auth.stop();
  assert.equal(signal.aborted, true);
  assert.equal(auth.status, 'stopped');
  await assert.rejects(auth.ready(), { status: 'stopped' });
  gate.resolve(tokenResponse('late-jwt'));
  await flush();
  assert.deepEqual(client.jwts, []);
  assert.deepEqual(log.events, []);
  assert.deepEqual(clock.pending(), []);
});

test('a fetch that hangs times out and backs off', async () => {
  const { env, net, clock } = testEnv({
    script: [
      (_url, init) =>
        new Promise((_resolve, reject) => {
          init.signal.addEventListener('abort', () => reject(new DOMException('aborted', 'AbortError')));
        }),
      tokenResponse('jwt-2'),
    ],
  });
  const log = statusLog();
  const auth = realtimeAuth(fakeClient(), { env, onStatus: log.onStatus, fetchTimeoutMs: 5000 });
  await clock.advance(5000);
  assert.equal(log.events[0].status, 'backing-off');
  assert.equal(log.events[0].detail.code, 'timeout');
  await clock.advance(1000);
  assert.equal(net.calls.length, 2);
  assert.equal(auth.status, 'authenticated');
  auth.stop();
});

test('the client must be able to take a JWT', () => {
  assert.throws(() => realtimeAuth({}), TypeError);
  assert.throws(() => realtimeAuth(undefined), TypeError);
});
