// "Sign out everywhere" in a real browser: two tabs hold relayed sockets of the demo user (one of
// them on the shared hub, which runs the browser helper); the demo app's server deletes every
// session in Appwrite and calls the service's internal kick. Both sockets close at once with 1008
// 'signed_out' (not at the next re-check, set to an hour here), the hub's tab reads it as
// `signed-out`, and the demo's default event rules kept `author.email` off the relayed events.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { connectedFrame, pageState, setUp, signIn, subscribed, waitFor } from './support.js';

for (const mode of ['cloud', '1.8']) {
  test(`sign out everywhere on ${mode}: every relayed socket of the user closes at once, the hub says signed-out`, async (t) => {
    const { demo, browser, page, record, pageErrors } = await setUp(t, {
      mode,
      env: { RELAY_REVALIDATE_SECONDS: '3600', DEMO_PUBLISH_SECONDS: '0.5' },
    });
    await signIn(page, demo.baseUrl, 'via=relay');
    const { config } = await pageState(page);
    const socket = await waitFor('the relayed socket', () =>
      record.sockets.find((s) => connectedFrame(s)?.data?.user?.$id === config.user.id),
    );
    await waitFor('the subscription', () => subscribed(socket));

    // The shared hub's socket lives in a SharedWorker: the tab knows it from the hub's messages.
    const hubPage = await browser.context.newPage();
    await hubPage.goto(`${demo.baseUrl}/?via=relay&shared=1`);
    await waitFor('the hub\'s relayed socket', async () =>
      (await pageState(hubPage)).sockets.some((s) => s.state === 'connected' && s.user?.id === config.user.id),
    );
    // The demo publishes public events (with author.email) twice a second: the relay's default rules drop it.
    const events = await waitFor('a relayed public event', async () =>
      (await pageState(page)).events.filter((e) => e.channels.includes(config.publicChannel)).at(0),
    );
    assert.equal(events.payload.author.name, 'Demo User');
    assert.ok(!('email' in events.payload.author), 'author.email never reaches a relayed page');
    const relayedEvents = socket.received.filter((frame) => frame.type === 'event');
    assert.ok(relayedEvents.length >= 1);
    assert.ok(relayedEvents.every((frame) => frame.data.payload.author?.email === undefined), 'nor any frame of its socket');

    const started = Date.now();
    await page.locator('#logout-everywhere').click();
    const closes = await waitFor('both tabs\' sockets to close', async () => {
      const [a, b] = [await pageState(page), await pageState(hubPage)];
      const first = a.sockets.find((s) => s.closeCode !== undefined);
      const hub = b.sockets.find((s) => s.state === 'closed');
      return first && hub ? { first, hub } : undefined;
    });
    assert.equal(closes.first.closeCode, 1008);
    assert.equal(closes.first.closeReason, 'signed_out');
    assert.equal(closes.hub.code, 1008);
    assert.ok(Date.now() - started < 60_000, 'long before the hour of RELAY_REVALIDATE_SECONDS');
    await waitFor('the hub tab to report signed-out', async () =>
      (await pageState(hubPage)).statuses.some((s) => s.status === 'signed-out' && s.detail?.code === 'signed_out'),
    );
    assert.match(await page.locator('#socket-state').textContent(), /signed out \(signed_out\)/);
    // The session is gone from Appwrite and the cookie from the browser: the page offers sign-in.
    assert.equal((await (await page.request.get(`${demo.baseUrl}/demo/config`)).json()).signedIn, false);
    assert.deepEqual(pageErrors, []);
  });
}
