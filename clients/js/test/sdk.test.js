// Against the real Appwrite web SDK (the devDependency), with a fake WebSocket playing the
// Realtime server: the JWT reaches the socket URL before connect and on reconnect, guest
// `connected` frames are detected through both of the SDK's Realtime APIs, and 401 error
// frames trigger a refresh, and a 403 "JWT and cookie" frame hands the socket over to the
// session cookie. The SDK's own timers are real (50 ms connect debounce, 1 s
// reconnect); the helper's run on the fake clock. Everything runs twice: against the newest
// SDK (`appwrite`) and the oldest supported one (`appwrite-oldest`, an alias of 26.1.0).
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, test } from 'node:test';

import * as newest from 'appwrite';
import * as oldest from 'appwrite-oldest';

import { realtimeAuth } from '../realtime-auth.js';
import {
  FakeWebSocket,
  deferred,
  problemResponse,
  statusLog,
  testEnv,
  tokenResponse,
  until,
  useRealSdk,
} from '../test-support/fakes.js';

const ACCOUNT = { $id: 'user-1', name: 'Ada' };
// Appwrite's `user_jwt_and_cookie_set`, as service/appwrite_token_exchange/emulator/errors.py words it.
const JWT_AND_COOKIE_FRAME = {
  type: 'error',
  data: {
    code: 403,
    message:
      'JWT and cookie used in the same request. Use either `setJWT` or `setCookie`. Learn about ' +
      'which authentication method to use in the SSR docs: ' +
      'https://appwrite.io/docs/products/auth/server-side-rendering',
  },
};
const teardown = useRealSdk({ beforeEach, afterEach });

for (const { Client, Realtime } of [newest, oldest]) {
  describe(`appwrite ${new Client().headers['x-sdk-version']}`, () => {
    function newClient() {
      return new Client().setEndpoint('https://appwrite.test/v1').setProject('proj');
    }

    /** The nth socket the SDK opened (0-based), once it exists. */
    async function socket(n = 0) {
      await until(() => FakeWebSocket.instances.length > n);
      return FakeWebSocket.instances[n];
    }

    function connected(ws, user) {
      ws.serverOpen();
      ws.serverSend({ type: 'connected', data: { channels: ['account'], user } });
    }

    /** The server refuses the handshake with `frame`, then drops it (the browser sees 1006). */
    function refuse(ws, frame = JWT_AND_COOKIE_FRAME) {
      ws.serverOpen();
      ws.serverSend(frame);
      ws.serverClose(1006);
    }

    test('SDK version check: the installed SDK sends the JWT on Realtime (>= 26.1.0)', () => {
      const version = newClient().headers['x-sdk-version'];
      const [major, minor] = version.split('.').map(Number);
      assert.ok(major > 26 || (major === 26 && minor >= 1), version);
    });

    test('client.subscribe(): the first socket URL carries the token set by ready()', async () => {
      const client = newClient();
      const { env } = testEnv({ script: [tokenResponse('jwt-1')] });
      const auth = realtimeAuth(client, { env });
      teardown.push(() => auth.stop());
      await auth.ready();
      teardown.push(client.subscribe('account', () => {}));
      const ws = await socket();
      assert.equal(ws.jwtParam(), 'jwt-1');
      assert.equal(new URL(ws.url).searchParams.get('project'), 'proj');
    });

    test('client.subscribe(): a dropped socket reconnects with the token minted when it closed', async () => {
      const client = newClient();
      const { env, net, clock } = testEnv({ script: [tokenResponse('jwt-1', 120), tokenResponse('jwt-2', 120)] });
      const auth = realtimeAuth(client, { env });
      teardown.push(() => auth.stop());
      await auth.ready();
      teardown.push(client.subscribe('account', () => {}));
      const first = await socket(0);
      connected(first, ACCOUNT);
      await clock.advance(3600_000);
      assert.equal(net.calls.length, 1, 'nothing minted while the socket is open');
      first.serverClose(1006); // dropped; the SDK reconnects after 1 s
      await clock.advance(0);
      assert.equal(client.config.jwt, 'jwt-2');
      const second = await socket(1);
      assert.equal(second.jwtParam(), 'jwt-2');
    });

    test('client.subscribe(): a new channel reopens the socket without a token of its own', async () => {
      const client = newClient();
      const { env, net, clock } = testEnv({ script: [tokenResponse('jwt-1', 120)] });
      const auth = realtimeAuth(client, { env });
      teardown.push(() => auth.stop());
      await auth.ready();
      teardown.push(client.subscribe('account', () => {}));
      connected(await socket(0), ACCOUNT);
      // A URL-based SDK path closes the socket and opens its successor itself; in 26.1.0+ the
      // channel goes in a frame, so no socket may be opened at all: either way, no token.
      teardown.push(client.subscribe('files', () => {}));
      await new Promise((resolve) => setTimeout(resolve, 200));
      await clock.advance(0);
      assert.equal(net.calls.length, 1);
    });

    test('Realtime service: first socket and reconnect carry the current token', async () => {
      const client = newClient();
      const realtime = new Realtime(client);
      const { env, net, clock } = testEnv({ script: [tokenResponse('jwt-1', 120), tokenResponse('jwt-2', 120)] });
      const auth = realtimeAuth(client, { env, realtime });
      teardown.push(() => auth.stop(), () => realtime.disconnect());
      await auth.ready();
      const subscribed = realtime.subscribe(['account'], () => {});
      const first = await socket(0);
      assert.equal(first.jwtParam(), 'jwt-1');
      connected(first, ACCOUNT);
      await subscribed;
      await clock.advance(3600_000);
      assert.equal(net.calls.length, 1, 'nothing minted while the socket is open');
      first.serverClose(1006);
      await clock.advance(0);
      const second = await socket(1);
      assert.equal(second.jwtParam(), 'jwt-2');
    });

    test('Realtime service: disconnect() closes the socket and mints nothing', async () => {
      const client = newClient();
      const realtime = new Realtime(client);
      const { env, net, clock } = testEnv({ script: [tokenResponse('jwt-1', 120)] });
      const auth = realtimeAuth(client, { env, realtime });
      teardown.push(() => auth.stop());
      await auth.ready();
      const subscribed = realtime.subscribe(['account'], () => {});
      connected(await socket(0), ACCOUNT);
      await subscribed;
      await realtime.disconnect();
      await clock.advance(0);
      assert.equal(net.calls.length, 1);
    });

    test('client.subscribe(): a guest socket, and a guest again with a fresh token, reports unsupported', async () => {
      const client = newClient();
      const original = client.realtime.createSocket;
      const { env, net, clock, document } = testEnv({
        script: [tokenResponse('jwt-1'), tokenResponse('jwt-2')],
      });
      const log = statusLog();
      const auth = realtimeAuth(client, { env, onStatus: log.onStatus });
      teardown.push(() => auth.stop());
      await auth.ready();
      teardown.push(client.subscribe('account', () => {}));
      const first = await socket(0);
      connected(first, null);
      await clock.advance(0);
      // The session may be gone (signed out, rotated): a fresh token says it is not, and the
      // guest socket is closed so that the SDK reconnects with that token ...
      assert.equal(net.calls.length, 2);
      assert.deepEqual(log.statuses(), ['authenticated', 'authenticated']);
      const second = await socket(1);
      assert.equal(second.jwtParam(), 'jwt-2');
      // ... as a guest again: the server ignored `?jwt=`.
      connected(second, null);
      await clock.advance(0);
      assert.deepEqual(log.statuses(), ['authenticated', 'authenticated', 'unsupported']);
      assert.deepEqual(log.events[2].detail, { reason: 'server' });
      assert.equal(auth.status, 'unsupported');
      // Final: nothing is fetched any more, and the SDK hook is gone.
      assert.deepEqual(clock.pending(), []);
      assert.equal(document.listenerCount('visibilitychange'), 0);
      assert.equal(client.realtime.createSocket, original);
      await clock.advance(3600_000);
      assert.equal(net.calls.length, 2);
    });

    test('Realtime service: a guest socket, and a guest again with a fresh token, reports unsupported', async () => {
      const client = newClient();
      const realtime = new Realtime(client);
      const { env, clock } = testEnv({ script: [tokenResponse('jwt-1'), tokenResponse('jwt-2')] });
      const log = statusLog();
      const auth = realtimeAuth(client, { env, realtime, onStatus: log.onStatus });
      teardown.push(() => auth.stop(), () => realtime.disconnect());
      await auth.ready();
      const subscribed = realtime.subscribe(['account'], () => {});
      connected(await socket(0), null);
      await subscribed;
      await clock.advance(0);
      const second = await socket(1);
      assert.equal(second.jwtParam(), 'jwt-2');
      connected(second, null);
      await clock.advance(0);
      assert.deepEqual(log.statuses(), ['authenticated', 'authenticated', 'unsupported']);
    });

    test('a rotated session: the guest socket reconnects with a fresh token as the user, and carries on', async () => {
      const client = newClient();
      const realtime = new Realtime(client);
      const { env, net, clock } = testEnv({ script: [tokenResponse('jwt-1'), tokenResponse('jwt-2')] });
      const log = statusLog();
      const auth = realtimeAuth(client, { env, realtime, onStatus: log.onStatus });
      teardown.push(() => auth.stop(), () => realtime.disconnect());
      await auth.ready();
      const subscribed = realtime.subscribe(['account'], () => {});
      // The server app replaced the session (a new sign-in): jwt-1's session is gone.
      connected(await socket(0), null);
      await subscribed;
      await clock.advance(0);
      const second = await socket(1);
      assert.equal(second.jwtParam(), 'jwt-2');
      connected(second, ACCOUNT);
      await clock.advance(0);
      assert.deepEqual(log.statuses(), ['authenticated', 'authenticated']);
      assert.equal(auth.status, 'authenticated');
      // Later, a guest socket again (that session deleted too) is checked afresh, not taken as proof.
      second.serverClose(1006);
      await clock.advance(0);
      connected(await socket(2), null);
      await clock.advance(0);
      assert.equal(auth.status, 'authenticated');
      assert.equal(net.calls.length, 4);
    });

    test('a connected frame with the user is not reported', async () => {
      const client = newClient();
      const realtime = new Realtime(client);
      const { env, net, clock } = testEnv({ script: [tokenResponse('jwt-1')] });
      const log = statusLog();
      const auth = realtimeAuth(client, { env, realtime, onStatus: log.onStatus });
      teardown.push(() => auth.stop(), () => realtime.disconnect());
      await auth.ready();
      teardown.push(client.subscribe('account', () => {}));
      const subscribed = realtime.subscribe(['account'], () => {});
      const [a, b] = [await socket(0), await socket(1)];
      connected(a, ACCOUNT);
      connected(b, ACCOUNT);
      await subscribed;
      await clock.advance(0);
      assert.deepEqual(log.statuses(), ['authenticated']);
      assert.equal(net.calls.length, 1);
    });

    test('a guest socket whose session is gone reports signed-out, not unsupported', async () => {
      const client = newClient();
      const { env, clock } = testEnv({
        script: [tokenResponse('jwt-1'), problemResponse(401, 'session_invalid')],
      });
      const log = statusLog();
      const auth = realtimeAuth(client, { env, onStatus: log.onStatus });
      teardown.push(() => auth.stop());
      await auth.ready();
      teardown.push(client.subscribe('account', () => {}));
      connected(await socket(), null);
      await clock.advance(0);
      assert.deepEqual(log.statuses(), ['authenticated', 'signed-out']);
    });

    test('the unsupported check waits out a backoff before deciding', async () => {
      const client = newClient();
      const { env, clock } = testEnv({
        random: () => 0,
        script: [
          tokenResponse('jwt-1'),
          problemResponse(503, 'upstream_unavailable', { 'Retry-After': '2' }),
          tokenResponse('jwt-2'),
        ],
      });
      const log = statusLog();
      const auth = realtimeAuth(client, { env, onStatus: log.onStatus });
      teardown.push(() => auth.stop());
      await auth.ready();
      teardown.push(client.subscribe('account', () => {}));
      connected(await socket(), null);
      await clock.advance(0);
      assert.deepEqual(log.statuses(), ['authenticated', 'backing-off']);
      await clock.advance(2000);
      assert.deepEqual(log.statuses(), ['authenticated', 'backing-off', 'authenticated']);
      const second = await socket(1);
      assert.equal(second.jwtParam(), 'jwt-2');
      connected(second, null);
      await clock.advance(0);
      assert.deepEqual(log.statuses(), ['authenticated', 'backing-off', 'authenticated', 'unsupported']);
    });

    test('a socket opened before the first token is not blamed on the server', async () => {
      const client = newClient();
      const realtime = new Realtime(client);
      const gate = deferred();
      const { env, net, clock } = testEnv({ script: [() => gate.promise] });
      const log = statusLog();
      const auth = realtimeAuth(client, { env, realtime, onStatus: log.onStatus });
      teardown.push(() => auth.stop(), () => realtime.disconnect());
      const subscribed = realtime.subscribe(['account'], () => {}); // without awaiting ready()
      const ws = await socket();
      assert.equal(ws.jwtParam(), null);
      connected(ws, null);
      await subscribed;
      gate.resolve(tokenResponse('jwt-1'));
      await auth.ready();
      await clock.advance(0);
      assert.deepEqual(log.statuses(), ['authenticated']);
      assert.equal(net.calls.length, 1);
    });

    test('a 401 error frame (JWT refused at the handshake) refreshes before the SDK reconnects', async () => {
      const client = newClient();
      const { env, net, clock } = testEnv({ script: [tokenResponse('jwt-1'), tokenResponse('jwt-2')] });
      const auth = realtimeAuth(client, { env });
      teardown.push(() => auth.stop());
      await auth.ready();
      teardown.push(client.subscribe('account', () => {}));
      const first = await socket(0);
      await clock.advance(30_000);
      first.serverOpen();
      first.serverSend({ type: 'error', data: { code: 401, message: 'Token expired.' } });
      first.serverClose(1011);
      await clock.advance(0);
      assert.equal(net.calls.length, 2);
      const second = await socket(1);
      assert.equal(second.jwtParam(), 'jwt-2');
    });

    test('a 401 error frame right after a fresh token does not refetch', async () => {
      const client = newClient();
      const { env, net, clock } = testEnv({ script: [tokenResponse('jwt-1')] });
      const auth = realtimeAuth(client, { env, minRefreshIntervalSeconds: 10 });
      teardown.push(() => auth.stop());
      await auth.ready();
      teardown.push(client.subscribe('account', () => {}));
      const ws = await socket(0);
      ws.serverOpen();
      ws.serverSend({ type: 'error', data: { code: 401, message: 'Token expired.' } });
      await clock.advance(0);
      assert.equal(net.calls.length, 1);
    });

    test('client.subscribe(): a 403 JWT-and-cookie frame drops the JWT for good (status cookie)', async () => {
      const client = newClient();
      const original = client.realtime.createSocket;
      const { env, net, clock, document, window } = testEnv({ script: [tokenResponse('jwt-1', 120)] });
      const log = statusLog();
      const auth = realtimeAuth(client, { env, onStatus: log.onStatus });
      teardown.push(() => auth.stop());
      await auth.ready();
      teardown.push(client.subscribe('account', () => {}));
      const first = await socket(0);
      assert.equal(first.jwtParam(), 'jwt-1');
      refuse(first);
      await clock.advance(0);
      assert.deepEqual(log.events, [
        { status: 'authenticated', detail: { userId: 'user-1', expiresIn: 120 } },
        { status: 'cookie', detail: { reason: 'cookie-session' } },
      ]);
      assert.equal(auth.status, 'cookie');
      assert.equal(client.config.jwt, '');
      // The SDK's own reconnect (1 s) goes without `?jwt=`, so the cookie alone authenticates it.
      const second = await socket(1);
      assert.equal(second.jwtParam(), null);
      connected(second, ACCOUNT);
      // Final: no timer, no listener, no SDK hook, and no fetch long past the refresh time.
      assert.deepEqual(clock.pending(), []);
      assert.equal(document.listenerCount('visibilitychange'), 0);
      assert.equal(window.listenerCount('online'), 0);
      assert.equal(client.realtime.createSocket, original);
      document.dispatchEvent(new Event('visibilitychange'));
      window.dispatchEvent(new Event('online'));
      await auth.refresh();
      await clock.advance(3 * 3600_000);
      assert.equal(net.calls.length, 1);
      assert.deepEqual(log.statuses(), ['authenticated', 'cookie']);
      assert.equal(client.config.jwt, '');
      await auth.ready(); // stays resolved
    });

    test('Realtime service and client.subscribe(): JWT-and-cookie frames on both sockets report cookie once', async () => {
      const client = newClient();
      const realtime = new Realtime(client);
      const { env, net, clock } = testEnv({ script: [tokenResponse('jwt-1', 120)] });
      const log = statusLog();
      const auth = realtimeAuth(client, { env, realtime, onStatus: log.onStatus });
      teardown.push(() => auth.stop(), () => realtime.disconnect());
      await auth.ready();
      teardown.push(client.subscribe('account', () => {}));
      const subscribed = realtime.subscribe(['account'], () => {});
      const [a, b] = [await socket(0), await socket(1)];
      assert.equal(a.jwtParam(), 'jwt-1');
      assert.equal(b.jwtParam(), 'jwt-1');
      refuse(a);
      refuse(b);
      await subscribed;
      await clock.advance(0);
      assert.deepEqual(log.statuses(), ['authenticated', 'cookie']);
      // Both APIs reconnect without the JWT.
      const [c, d] = [await socket(2), await socket(3)];
      assert.equal(c.jwtParam(), null);
      assert.equal(d.jwtParam(), null);
      await clock.advance(3 * 3600_000);
      assert.equal(net.calls.length, 1);
      assert.deepEqual(log.statuses(), ['authenticated', 'cookie']);
    });

    test('a JWT-and-cookie frame before the first token resolves ready(); the late token is not set', async () => {
      const client = newClient();
      client.setJWT('jwt-from-page'); // e.g. rendered into the page by the server
      const realtime = new Realtime(client);
      const gate = deferred();
      const { env, net, clock } = testEnv({ script: [() => gate.promise] });
      const log = statusLog();
      const auth = realtimeAuth(client, { env, realtime, onStatus: log.onStatus });
      teardown.push(() => auth.stop(), () => realtime.disconnect());
      const subscribed = realtime.subscribe(['account'], () => {}); // without awaiting ready()
      const first = await socket(0);
      assert.equal(first.jwtParam(), 'jwt-from-page');
      refuse(first);
      await subscribed;
      // ready() resolves: the socket works, through the cookie. (Polled, so that a ready() that
      // never settles fails this test instead of stalling the whole run.)
      let settled;
      auth.ready().then(
        () => (settled = 'resolved'),
        () => (settled = 'rejected'),
      );
      await until(() => settled);
      assert.equal(settled, 'resolved');
      gate.resolve(tokenResponse('jwt-late'));
      await clock.advance(3 * 3600_000);
      assert.deepEqual(log.statuses(), ['cookie']);
      assert.equal(client.config.jwt, '');
      assert.equal((await socket(1)).jwtParam(), null);
      assert.equal(net.calls.length, 1);
    });

    test('a 403 error frame with another message (blocked user) is not taken for the cookie', async () => {
      const client = newClient();
      const { env, net, clock } = testEnv({ script: [tokenResponse('jwt-1', 120), tokenResponse('jwt-2', 120)] });
      const log = statusLog();
      const auth = realtimeAuth(client, { env, onStatus: log.onStatus });
      teardown.push(() => auth.stop());
      await auth.ready();
      teardown.push(client.subscribe('account', () => {}));
      const first = await socket(0);
      refuse(first, { type: 'error', data: { code: 403, message: 'The current user has been blocked.' } });
      await clock.advance(0);
      assert.deepEqual(log.statuses(), ['authenticated', 'authenticated'], 'no cookie status');
      assert.equal(auth.status, 'authenticated');
      // Still minting as usual: the SDK's reconnect carries the token minted at the close.
      assert.equal((await socket(1)).jwtParam(), 'jwt-2');
      assert.equal(net.calls.length, 2);
    });

    for (const api of ['Realtime service', 'client.subscribe()']) {
      test(`${api}: an Invalid Origin refusal (1008, then a dropped connection) is final, and the SDK stops`, async () => {
        const client = newClient();
        const realtime = new Realtime(client);
        const { env, net, clock } = testEnv({ script: [tokenResponse('jwt-1', 120)] });
        const log = statusLog();
        const auth = realtimeAuth(client, { env, realtime, onStatus: log.onStatus });
        teardown.push(() => auth.stop(), () => realtime.disconnect());
        await auth.ready();
        if (api === 'client.subscribe()') teardown.push(client.subscribe('account', () => {}));
        else realtime.subscribe(['account'], () => {}).catch(() => {});
        refuse(await socket(0), {
          type: 'error',
          data: { code: 1008, message: 'Invalid Origin. Register your new client (app.example) as a new Web platform on your project console dashboard' },
        });
        await clock.advance(0);
        assert.deepEqual(log.events.slice(1), [{ status: 'error', detail: { code: 'platform_not_registered' } }]);
        // SDK 28's Realtime service would reconnect every second from the 1006; it is stopped.
        await new Promise((resolve) => setTimeout(resolve, 1_500));
        assert.equal(FakeWebSocket.instances.length, 1, 'no reconnect');
        assert.equal(net.calls.length, 1, 'and no token for one');
      });
    }

    test('another 1008 refusal is final too, with its own code', async () => {
      const client = newClient();
      const realtime = new Realtime(client);
      const { env, clock } = testEnv({ script: [tokenResponse('jwt-1', 120)] });
      const log = statusLog();
      const auth = realtimeAuth(client, { env, realtime, onStatus: log.onStatus });
      teardown.push(() => auth.stop(), () => realtime.disconnect());
      await auth.ready();
      realtime.subscribe(['account'], () => {}).catch(() => {});
      refuse(await socket(0), { type: 'error', data: { code: 1008, message: 'Missing channels' } });
      await clock.advance(0);
      assert.deepEqual(log.statuses(), ['authenticated', 'error']);
      assert.deepEqual(log.events[1].detail, { code: 'policy_violation' });
    });

    test('a JWT-and-cookie frame on a socket whose URL had no JWT is ignored', async () => {
      const client = newClient();
      const realtime = new Realtime(client);
      const gate = deferred();
      const { env, net, clock } = testEnv({ script: [() => gate.promise] });
      const log = statusLog();
      const auth = realtimeAuth(client, { env, realtime, onStatus: log.onStatus });
      teardown.push(() => auth.stop(), () => realtime.disconnect());
      const subscribed = realtime.subscribe(['account'], () => {}); // without awaiting ready()
      const ws = await socket();
      assert.equal(ws.jwtParam(), null);
      refuse(ws);
      await subscribed;
      gate.resolve(tokenResponse('jwt-1'));
      await auth.ready();
      await clock.advance(0);
      assert.deepEqual(log.statuses(), ['authenticated']);
      assert.equal(client.config.jwt, 'jwt-1');
      assert.equal(net.calls.length, 1);
      assert.equal((await socket(1)).jwtParam(), 'jwt-1');
    });

    test('stop() restores the SDK and detaches from its sockets', async () => {
      const client = newClient();
      const original = client.realtime.createSocket;
      const { env, net, clock } = testEnv({ script: [tokenResponse('jwt-1')] });
      const auth = realtimeAuth(client, { env });
      assert.notEqual(client.realtime.createSocket, original);
      await auth.ready();
      teardown.push(client.subscribe('account', () => {}));
      const ws = await socket();
      auth.stop();
      assert.equal(client.realtime.createSocket, original);
      connected(ws, null);
      await clock.advance(0);
      assert.equal(net.calls.length, 1);
      assert.equal(auth.status, 'stopped');
      assert.equal(client.config.jwt, 'jwt-1', 'stop() leaves the current JWT in place');
    });

    test('an SDK older than 26.1.0 is reported as unsupported without fetching', async () => {
      const client = newClient();
      client.headers['x-sdk-version'] = '26.0.0';
      const { env, net } = testEnv();
      const log = statusLog();
      const auth = realtimeAuth(client, { env, onStatus: log.onStatus });
      assert.deepEqual(log.events, [], 'not reported before realtimeAuth() returns');
      await assert.rejects(auth.ready(), { status: 'unsupported' });
      assert.deepEqual(log.events, [{ status: 'unsupported', detail: { reason: 'sdk', sdkVersion: '26.0.0' } }]);
      assert.equal(net.calls.length, 0);
    });
  });
}
