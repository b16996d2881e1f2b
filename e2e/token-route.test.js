// The token route in a real browser: the demo page signs in server-side (httpOnly cookie), the
// helper fetches short-lived JWTs, and the official web SDK opens Realtime with them.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  connectedFrame,
  jwtOf,
  pageState,
  publishMarked,
  setUp,
  signIn,
  sleep,
  subscribed,
  waitFor,
  waitForEvent,
} from './support.js';

const hasStatus = (state, status) => state.statuses.some((entry) => entry.status === status);

/** The status Appwrite's REST API answers a request authenticated by this JWT alone. */
async function accountStatus(demo, project, jwt) {
  const response = await fetch(`${demo.emulatorUrl}/v1/account`, {
    headers: { 'X-Appwrite-Project': project, 'X-Appwrite-JWT': jwt },
  });
  await response.arrayBuffer();
  return response.status;
}

/** Sign in and wait for the first socket that Appwrite accepted as the demo user. */
async function signedInSocket(page, demo, record, query = '') {
  await signIn(page, demo.baseUrl, query);
  const state = await pageState(page);
  const userId = state.config.user.id;
  const socket = await waitFor('a socket connected as the demo user', () =>
    record.sockets.find((s) => connectedFrame(s)?.data?.user?.$id === userId),
  );
  await waitFor('the subscription to be confirmed', () => subscribed(socket));
  return { socket, userId };
}

test('signed in, the page gets a JWT, subscribes, and events published on the server arrive', async (t) => {
  const { demo, page, record, pageErrors } = await setUp(t);
  const { socket, userId } = await signedInSocket(page, demo, record);

  const [tokenResponse] = record.tokenResponses();
  assert.equal(tokenResponse.status, 200);
  await tokenResponse.bodyRead;
  const token = JSON.parse(tokenResponse.body);
  assert.equal(token.userId, userId);
  assert.equal(jwtOf(socket.url), token.jwt, 'the SDK put the fresh JWT on the handshake URL');
  assert.equal(connectedFrame(socket).data.user.name, 'Demo User');

  const personal = await publishMarked(demo, { userId });
  assert.equal(personal.delivered, 1);
  const event = await waitForEvent(page, personal.marker);
  assert.ok(event.channels.includes('account'));

  const state = await pageState(page);
  const shared = await publishMarked(demo, { channels: [state.config.publicChannel] });
  await waitForEvent(page, shared.marker);
  await waitFor('an event from the demo publisher', async () =>
    (await pageState(page)).events.some((e) => e.payload?.source === 'timer'),
  );

  assert.equal(await page.locator('#auth-status').getAttribute('data-status'), 'authenticated');
  assert.match(await page.locator('#token-life').textContent(), /expires in \d+ s/);
  assert.match(await page.locator('#socket-state').textContent(), /connected as Demo User/);
  assert.deepEqual(pageErrors, []);
});

test('the session cookie is httpOnly: page script cannot read it and no response body carries it', async (t) => {
  const { demo, browser, page, record } = await setUp(t);
  await signedInSocket(page, demo, record);
  await publishNowFromThePage(page);

  const cookies = await browser.context.cookies(demo.baseUrl);
  const cookie = cookies.find((c) => c.name === 'a_session_demo');
  assert.ok(cookie?.value, 'the sign-in set the session cookie');
  assert.equal(cookie.httpOnly, true);
  assert.equal(cookie.sameSite, 'Lax');
  const value = cookie.value.replace(/^"|"$/g, '');
  const { secret } = JSON.parse(Buffer.from(value, 'base64').toString('utf8'));
  assert.ok(secret.length >= 32);

  const visible = await page.evaluate(() => document.cookie);
  assert.ok(!visible.includes('a_session_demo') && !visible.includes(value));
  assert.match(await page.locator('#cookie-check').textContent(), /httpOnly, invisible/);

  const bodies = await record.bodies();
  assert.ok(bodies.length >= 8, 'page, scripts, config, token and publish responses were seen');
  for (const { url, body } of bodies) {
    assert.ok(!body.includes(value) && !body.includes(secret), `${url} carries the session`);
  }
  for (const socket of record.sockets) {
    assert.ok(!socket.url.includes(value) && !socket.url.includes(secret));
    for (const frame of [...socket.received, ...socket.sent]) {
      const text = JSON.stringify(frame);
      assert.ok(!text.includes(value) && !text.includes(secret), 'a socket frame carries the session');
    }
  }
});

test('after the JWT expired, a dropped socket reconnects with a fresh token and events flow again', async (t) => {
  const { demo, page, record } = await setUp(t, { env: { TOKEN_TTL_SECONDS: '3' } });
  const { socket: first, userId } = await signedInSocket(page, demo, record);
  const firstResponse = record.tokenResponses()[0];
  await firstResponse.bodyRead;
  const firstToken = JSON.parse(firstResponse.body);
  assert.equal(jwtOf(first.url), firstToken.jwt);

  // Until its expiresAt, Appwrite takes the first JWT; the test waits for Appwrite itself to refuse
  // it (the emulator checks exp on its own clock), not for a span of time to pass.
  const { config } = await pageState(page);
  assert.equal(await accountStatus(demo, config.project, firstToken.jwt), 200, 'the fresh JWT is taken');
  const refused = async () => (await accountStatus(demo, config.project, firstToken.jwt)) === 401;
  await waitFor('Appwrite to refuse the expired JWT', refused, {
    timeoutMs: Date.parse(firstToken.expiresAt) - Date.now() + 5_000,
    intervalMs: 250,
  });
  // Appwrite checks the credential at the handshake only: the open socket outlives its token.
  await waitForEvent(page, (await publishMarked(demo, { userId })).marker);
  assert.ok(!first.closed, 'the socket opened with the now expired JWT is still open');

  const { closed } = await demo.control('/realtime/disconnect', { userId, code: 1011 });
  assert.equal(closed, 1);
  await waitFor('the first socket to close', () => first.closed);

  const second = await waitFor(
    'a new socket connected as the demo user',
    () => record.sockets.find((s) => s !== first && connectedFrame(s)?.data?.user?.$id === userId),
    { timeoutMs: 15_000 },
  );
  assert.notEqual(jwtOf(second.url), firstToken.jwt, 'the reconnect carries a different JWT');
  assert.equal(record.tokenResponses().length, 2, 'nothing was minted while the socket was open; one token for the reconnect');
  // A reconnect that still carried the expired JWT (the SDK retries after 1 s, maybe before the
  // helper's token arrived) was refused by Appwrite, as a real server does.
  for (const retry of record.sockets.filter((s) => s !== first && jwtOf(s.url) === firstToken.jwt)) {
    assert.ok(retry.received.some((frame) => frame.type === 'error' && frame.data?.code === 401));
  }
  const later = record.tokenResponses().slice(1);
  await Promise.all(later.map((r) => r.bodyRead));
  assert.ok(
    later.some((r) => r.status === 200 && JSON.parse(r.body).jwt === jwtOf(second.url)),
    'the new JWT came from a later token request, i.e. from the helper',
  );

  await waitFor('the subscription on the new socket', () => subscribed(second));
  await waitForEvent(page, (await publishMarked(demo, { userId })).marker);
});

test('after sign-out the next token request is 401: the helper says signed-out and stops', async (t) => {
  const { demo, browser, page, record } = await setUp(t, { env: { TOKEN_TTL_SECONDS: '4' } });
  const { socket } = await signedInSocket(page, demo, record);
  const cookie = (await browser.context.cookies(demo.baseUrl)).find((c) => c.name === 'a_session_demo');
  const before = record.tokenResponses().length;

  await page.locator('#logout').click();
  await waitFor('the helper to report signed-out', async () => hasStatus(await pageState(page), 'signed-out'));
  const after = record.tokenResponses().slice(before);
  assert.equal(after.length, 1, 'exactly one token request after sign-out');
  assert.equal(after[0].status, 401);
  await after[0].bodyRead;
  assert.equal(JSON.parse(after[0].body).code, 'session_missing', 'the cookie was cleared');

  // The session itself is gone in Appwrite: the old cookie value no longer mints anything.
  const direct = await fetch(`${demo.baseUrl}/v1/realtime/token`, {
    method: 'POST',
    headers: { 'X-CSRF': '1', Cookie: `a_session_demo=${cookie.value}` },
    signal: AbortSignal.timeout(5_000),
  });
  assert.equal(direct.status, 401);
  assert.equal((await direct.json()).code, 'session_invalid');

  const count = record.tokenResponses().length;
  await sleep(4_000);
  assert.equal(record.tokenResponses().length, count, 'no token request after signed-out');
  assert.equal(await page.locator('#auth-status').getAttribute('data-status'), 'signed-out');
  assert.ok(await page.locator('#signin').isVisible());
  // Appwrite would keep a JWT-opened socket; the page closes it on signed-out.
  assert.ok(socket.closed);
  assert.equal(record.sockets.length, 1, 'no reconnect after signed-out');
});

test('against self-hosted 1.9 the helper reports that JWT Realtime is unsupported, and stops', async (t) => {
  const { demo, page, record } = await setUp(t, { mode: '1.9' });
  await signIn(page, demo.baseUrl);
  await waitFor('the helper to report unsupported', async () => hasStatus(await pageState(page), 'unsupported'));

  const state = await pageState(page);
  assert.deepEqual(
    state.statuses.map((s) => s.status),
    ['authenticated', 'authenticated', 'unsupported'],
  );
  assert.equal(state.statuses[2].detail.reason, 'server');
  // A guest after a JWT may be a session that is gone, so the helper tried a fresh token on a
  // new socket first: a guest again.
  const [first, second] = record.sockets;
  assert.equal(record.sockets.length, 2);
  await Promise.all(record.tokenResponses().map((r) => r.bodyRead));
  const [jwt1, jwt2] = record.tokenResponses().map((r) => JSON.parse(r.body).jwt);
  assert.deepEqual([jwtOf(first.url), jwtOf(second.url)], [jwt1, jwt2], 'each handshake carried its own fresh JWT');
  for (const socket of [first, second]) {
    assert.equal(connectedFrame(socket).data.user, null, '1.9.6 ignores ?jwt=: the socket is a guest');
  }
  assert.match(await page.locator('#auth-status').textContent(), /relay/);

  const count = record.tokenResponses().length;
  assert.equal(count, 2, 'the first token and the one that confirmed the session is fine');
  await waitFor('the page to close the guest socket', () => second.closed);
  await sleep(2_500);
  assert.equal(record.tokenResponses().length, count, 'nothing loops');
  assert.equal(record.sockets.length, 2, 'and no socket reopens');
});

test('a rotated session: a guest socket is retried with a fresh token, and the page stays signed in', async (t) => {
  const { demo, browser, page, record } = await setUp(t);
  const { socket: first, userId } = await signedInSocket(page, demo, record);
  // A token that no socket has carried yet, minted for the session that is about to go.
  await page.evaluate(() => window.demo.auth.refresh());
  // The app's server rotates the session: a new one in the cookie, the old one deleted.
  const [cookie] = (await browser.context.cookies(demo.baseUrl)).filter((c) => c.name === 'a_session_demo');
  const { secret: rotated } = await demo.control('/sessions', { userId });
  const signedOut = await fetch(`${demo.baseUrl}/demo/logout`, {
    method: 'POST',
    headers: { Origin: demo.baseUrl, Cookie: `a_session_demo=${cookie.value}` },
    signal: AbortSignal.timeout(5_000),
  });
  assert.equal(signedOut.status, 204);
  const old = await fetch(`${demo.baseUrl}/v1/realtime/token`, {
    method: 'POST',
    headers: { 'X-CSRF': '1', Cookie: `a_session_demo=${cookie.value}` },
    signal: AbortSignal.timeout(5_000),
  });
  assert.equal(old.status, 401, 'the old session is gone');
  await browser.context.addCookies([{ ...cookie, value: rotated }]);

  // The socket drops. Its reconnect carries the waiting token, whose session is gone: a guest.
  await demo.control('/realtime/disconnect', { userId, code: 1011 });
  const back = await waitFor(
    'a socket connected as the user again',
    () => record.sockets.find((s) => s !== first && connectedFrame(s)?.data?.user?.$id === userId),
    { timeoutMs: 15_000 },
  );
  const guests = record.sockets.filter((s) => connectedFrame(s) && connectedFrame(s).data.user === null);
  assert.equal(guests.length, 1, 'one guest socket: the one with the deleted session\'s token');
  assert.ok(guests[0].closed, 'the helper closed it, so that the SDK reconnected with a fresh token');
  const statuses = (await pageState(page)).statuses.map((s) => s.status);
  assert.ok(!statuses.includes('unsupported'), `not taken for a server that ignores ?jwt= (${statuses})`);
  assert.equal(statuses.at(-1), 'authenticated');
  await waitFor('the subscription on the new socket', () => subscribed(back));
  await waitForEvent(page, (await publishMarked(demo, { userId })).marker);
});

test('the page\'s origin not a Web platform: the helper stops on Appwrite\'s 1008 with the fix, and the SDK stops reconnecting', async (t) => {
  const { demo, page, record } = await setUp(t);
  const removed = await fetch(`${demo.emulatorUrl}/_emulator/platforms/127.0.0.1`, { method: 'DELETE', signal: AbortSignal.timeout(5_000) });
  assert.ok(removed.ok, 'the emulator forgot the page\'s host');
  await signIn(page, demo.baseUrl);
  await waitFor('the helper to report an error', async () => hasStatus(await pageState(page), 'error'));
  const state = await pageState(page);
  assert.deepEqual(state.statuses.at(-1), { status: 'error', detail: { code: 'platform_not_registered' } });
  assert.match(await page.locator('#problem').textContent(), /add 127\.0\.0\.1 as a Web platform/);
  const [socket] = record.sockets;
  assert.ok(socket.received.some((frame) => frame.type === 'error' && frame.data?.code === 1008));
  await waitFor('the refused socket to close', () => socket.closed);
  // SDK 28 alone reconnects every second after this refusal; the helper disconnected it.
  await sleep(3_000);
  assert.equal(record.sockets.length, 1, 'no reconnect');
  assert.equal(record.tokenResponses().length, 1, 'no token for one');
});

async function publishNowFromThePage(page) {
  const before = (await pageState(page)).events.length;
  await page.locator('#publish').click();
  await waitFor('the published events on the page', async () => (await pageState(page)).events.length >= before + 2);
}
