// The relay in a real browser, against self-hosted 1.9 (which ignores a JWT on the Realtime
// handshake): the unmodified web SDK is pointed at the service, which authenticates upstream
// with the session from the httpOnly cookie, so the page never holds a token.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  connectedFrame,
  pageState,
  publishMarked,
  record as recordPage,
  setUp,
  signIn,
  subscribed,
  waitFor,
  waitForEvent,
} from './support.js';


/** Sign in on `query` and wait for the relayed socket that Appwrite accepted as the demo user. */
async function relayedSocket(page, demo, record, query = 'via=relay') {
  await signIn(page, demo.baseUrl, query);
  const userId = (await pageState(page)).config.user.id;
  const socket = await waitFor('a relayed socket connected as the demo user', () =>
    record.sockets.find((s) => connectedFrame(s)?.data?.user?.$id === userId),
  );
  return { socket, userId };
}

test('relay on 1.9: the SDK subscribes through the service and gets events; the JWT route does not work there', async (t) => {
  const { demo, browser, page, record, pageErrors } = await setUp(t, { mode: '1.9' });
  const { socket, userId } = await relayedSocket(page, demo, record);

  const url = new URL(socket.url);
  assert.equal(url.origin.replace('ws:', 'http:'), demo.baseUrl, 'the socket goes to the service, same origin');
  assert.equal(url.pathname, '/v1/realtime');
  assert.deepEqual([...url.searchParams.keys()], ['project'], 'the handshake URL carries no token');
  assert.equal(record.tokenResponses().length, 0, 'the relay page never asks for a token');

  await waitFor('the subscription', () => subscribed(socket));
  await waitForEvent(page, (await publishMarked(demo, { userId })).marker);
  const { publicChannel } = (await pageState(page)).config;
  await waitForEvent(page, (await publishMarked(demo, { channels: [publicChannel] })).marker);
  assert.match(await page.locator('#token-life').textContent(), /never holds one/);

  // Upstream, Appwrite saw the relay's handshake: as the user, and without a token in its URL.
  const handshakes = await demo.control('/requests?path=/v1/realtime');
  assert.ok(handshakes.length >= 1);
  for (const handshake of handshakes) assert.ok(!('jwt' in handshake.query), 'no jwt on the upstream URL');
  const open = await demo.control('/realtime/connections?open=1');
  assert.ok(open.some((c) => c.userId === userId && c.forwardedFor === '127.0.0.1'));

  // The same server through the token route: the JWT socket comes up as a guest.
  const jwtPage = await browser.context.newPage();
  const jwtRecord = recordPage(jwtPage);
  await jwtPage.goto(`${demo.baseUrl}/?via=jwt`);
  await waitFor('the helper on the JWT page to report unsupported', async () =>
    (await pageState(jwtPage)).statuses.some((s) => s.status === 'unsupported'),
  );
  assert.equal(connectedFrame(jwtRecord.sockets[0]).data.user, null);
  assert.deepEqual(pageErrors, []);
});

// Modes whose Realtime takes channels only in the socket URL and refuses a socket without them
// ("Missing channels"): the SDK's `?project=`-only socket works there only through the relay's
// translation. The lead adds '1.9.0' once the emulator plays it.
const URL_CHANNELS_ONLY_MODES = ['1.8', '1.9.0'];

for (const mode of URL_CHANNELS_ONLY_MODES) {
  test(`relay on ${mode}: the SDK subscribes by frame, the relay puts its channels in the upstream URL, events arrive`, async (t) => {
    const { demo, page, record, pageErrors } = await setUp(t, { mode });
    const { socket, userId } = await relayedSocket(page, demo, record);

    const url = new URL(socket.url);
    assert.deepEqual([...url.searchParams.keys()], ['project'], 'the SDK names no channels in its URL');
    await waitFor('the relay to confirm the subscription', () => subscribed(socket));
    assert.ok(socket.sent.some((frame) => frame.type === 'subscribe'), 'the SDK subscribed by frame');

    const { publicChannel } = (await pageState(page)).config;
    const open = await waitFor('the upstream socket with the page\'s channels in its URL', async () => {
      const sockets = await demo.control('/realtime/connections?open=1');
      return sockets.find((c) => c.userId === userId && c.channels.includes(publicChannel));
    });
    assert.equal(open.forwardedFor, '127.0.0.1');

    const account = await publishMarked(demo, { userId });
    await waitForEvent(page, account.marker);
    await waitForEvent(page, (await publishMarked(demo, { channels: [publicChannel] })).marker);
    const events = socket.received.filter((frame) => frame.type === 'event');
    assert.ok(events.length >= 2 && events.every((frame) => frame.data.subscriptions?.length > 0), 'events carry the SDK\'s ids');
    assert.ok(!socket.received.some((frame) => frame.type === 'error'), 'no error frame reached the page');
    assert.deepEqual(pageErrors, []);
  });
}

test('relay: after sign-out the relayed socket is closed (1008) within the revalidation period', async (t) => {
  const revalidateSeconds = 1;
  const { demo, page, record } = await setUp(t, {
    mode: '1.9',
    env: { RELAY_REVALIDATE_SECONDS: String(revalidateSeconds) },
  });
  // The page's timers run on a clock the test can move (time flows as usual until it does), and the
  // page counts the sockets it opens: a reconnect the SDK scheduled is a timer, then a new socket.
  await page.clock.install();
  await page.addInitScript(() => {
    const Native = window.WebSocket;
    window.socketsOpened = 0;
    window.WebSocket = class extends Native {
      constructor(...args) {
        super(...args);
        window.socketsOpened += 1;
      }
    };
  });
  const { socket, userId } = await relayedSocket(page, demo, record);
  await waitFor('the subscription', () => subscribed(socket));

  const signedOutAt = Date.now();
  await page.locator('#logout').click();
  await waitFor('the relay to close the socket', () => socket.closed, { timeoutMs: (revalidateSeconds + 4) * 1000 });
  const took = socket.closedAt - signedOutAt;
  assert.ok(took <= (revalidateSeconds + 2) * 1000, `closed ${took} ms after sign-out`);

  const closeCode = await waitFor('the page to see the close code', async () =>
    (await pageState(page)).sockets.at(-1).closeCode,
  );
  assert.equal(closeCode, 1008, 'policy violation: the SDK must not reconnect');
  // Past the SDK's longest reconnect back-off (60 s), every timer it may have set has fired: no
  // socket was opened since.
  await page.clock.runFor(61_000);
  assert.equal(await page.evaluate(() => window.socketsOpened), 1, 'the SDK did not reconnect');
  assert.equal(record.sockets.length, 1, 'the SDK did not reconnect');
  const open = await demo.control('/realtime/connections?open=1');
  assert.ok(!open.some((c) => c.userId === userId), 'the upstream socket is closed too');
});

test('relay: a channel outside RELAY_CHANNELS_ALLOW is refused with an error frame', async (t) => {
  const { demo, browser, page, record } = await setUp(t, {
    mode: '1.9',
    env: { RELAY_CHANNELS_ALLOW: 'account,databases.*.collections.public.*' },
  });
  const { socket, userId } = await relayedSocket(page, demo, record, 'via=relay&channels=files');

  const refusal = await waitFor('an error frame for the disallowed channel', () =>
    socket.received.find((frame) => frame.type === 'error'),
  );
  assert.equal(refusal.data.code, 1008);
  assert.match(refusal.data.message, /files/);
  assert.ok(socket.sent.some((frame) => frame.type === 'subscribe' && frame.data[0].channels.includes('files')));
  assert.ok(!subscribed(socket), 'no subscription was confirmed');
  const upstream = await demo.control('/realtime/connections?open=1');
  const channels = upstream.filter((c) => c.userId === userId).flatMap((c) => c.subscriptions.flatMap((s) => s.channels));
  assert.ok(!channels.includes('files'), 'the subscribe frame never reached Appwrite');
  assert.deepEqual((await pageState(page)).sockets[0].errors.map((e) => e.code), [1008]);

  // Allowed channels on the same relay still work.
  const allowed = await browser.context.newPage();
  const allowedRecord = recordPage(allowed);
  await allowed.goto(`${demo.baseUrl}/?via=relay`);
  const good = await waitFor('an allowed subscription', () => allowedRecord.sockets.find(subscribed));
  assert.ok(!good.received.some((frame) => frame.type === 'error'));
  await waitForEvent(allowed, (await publishMarked(demo, { userId })).marker);
});
