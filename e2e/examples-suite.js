// The tests of the example apps (examples/nuxt, examples/next, examples/sveltekit) in real Chromium, each on
// its framework's dev server with its dev proxy, against the emulator and the service: the
// server signs in with node-appwrite and keeps session.secret in an httpOnly cookie; the page
// subscribes with the web SDK and the helper (JWT route) or through the relay.
//
// One file per framework (examples-<name>.test.js) calls exampleSuite(name): node --test gives
// each file its own time budget, and a framework's dev server is started once for its tests.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { installed, startExample } from './examples.js';
import { connectedFrame, jwtOf, publishMarked, record, sleep, startBrowser, waitFor } from './support.js';

const RELAY_REVALIDATE_SECONDS = 1;

/** A fresh browser for one test, closed by `t.after`; the page records sockets and responses. */
async function openPage(t) {
  const browser = await startBrowser();
  t.after(() => browser.close());
  const page = browser.context.pages()[0] ?? (await browser.context.newPage());
  const pageErrors = [];
  page.on('pageerror', (error) => pageErrors.push(error.message));
  return { browser, page, pageErrors, record: record(page) };
}

/** Sign in through the example's server-side form; resolves with the user's id on the signed-in page. */
async function signIn(page, appUrl) {
  await page.goto(appUrl, { timeout: 60_000 });
  await page.locator('#signin-button').click();
  await page.locator('#user-id').waitFor({ timeout: 60_000 });
  return (await page.locator('#user-id').textContent()).trim();
}

const status = (page) => page.locator('#status').getAttribute('data-status');
const waitForStatus = (page, wanted, timeoutMs = 10_000) =>
  waitFor(`the page's helper status ${wanted}`, async () => (await status(page)) === wanted, { timeoutMs });

/** Publish an account event for the user and wait until the page lists it. */
async function eventArrives(page, app, userId) {
  const { marker } = await publishMarked(app.demo, { userId });
  await waitFor(`the event ${marker} on the page`, async () => (await page.locator('#events').textContent()).includes(marker));
}

/** The example's tests: the JWT route and the relay, on one dev server. */
export function exampleSuite(name) {
  describe(`examples/${name}`, { skip: !installed(name) && `npm ci has not run in examples/${name}` }, () => {
    let app;
    before(async () => {
      const startedAt = Date.now();
      app = await startExample(name, { env: { RELAY_REVALIDATE_SECONDS: String(RELAY_REVALIDATE_SECONDS) } });
      process.stdout.write(`# examples/${name}: dev server ready in ${Date.now() - startedAt} ms\n`);
    }, { timeout: 180_000 });
    after(async () => {
      if (process.env.E2E_DEBUG) for (const line of app?.output().trim().split('\n') ?? []) process.stdout.write(`# ${name}: ${line}\n`);
      await app?.stop();
    });

    test('JWT route: sign in on the server, a token through the dev proxy, live events, sign-out -> signed-out', async (t) => {
      const { browser, page, pageErrors, record: seen } = await openPage(t);
      const userId = await signIn(page, app.appUrl);

      const cookie = (await browser.context.cookies(app.appUrl)).find((c) => c.name === 'a_session_demo');
      assert.ok(cookie, 'the server set the session cookie');
      assert.equal(cookie.httpOnly, true);
      assert.equal(cookie.sameSite, 'Lax');
      assert.equal(await page.evaluate(() => document.cookie.includes('a_session_demo')), false, 'page scripts cannot read it');

      await waitForStatus(page, 'authenticated', 60_000);
      const [token] = seen.tokenResponses();
      assert.equal(new URL(token.url).origin, app.appUrl, 'the token comes from the page\'s own origin (the dev proxy)');
      assert.equal(token.status, 200);
      const socket = await waitFor('a socket to Appwrite connected as the user', () =>
        seen.sockets.find((s) => connectedFrame(s)?.data?.user?.$id === userId),
      );
      assert.equal(new URL(socket.url).host, new URL(app.demo.emulatorUrl).host, 'the SDK talks to Appwrite itself');
      assert.ok(jwtOf(socket.url), 'with the JWT on the handshake');
      await eventArrives(page, app, userId);

      const before = seen.tokenResponses().length;
      await page.locator('#signout').click();
      await waitForStatus(page, 'signed-out');
      const after = seen.tokenResponses().slice(before);
      assert.equal(after.length, 1, 'one token request after sign-out');
      assert.equal(after[0].status, 401);
      await after[0].bodyRead;
      assert.equal(JSON.parse(after[0].body).code, 'session_missing', 'the server cleared the cookie');
      assert.equal((await browser.context.cookies(app.appUrl)).some((c) => c.name === 'a_session_demo'), false);
      await waitFor('the page to close its socket', () => socket.closed);
      // The session is gone in Appwrite too: the old cookie value mints nothing.
      const direct = await fetch(`${app.serviceUrl}/v1/realtime/token`, {
        method: 'POST',
        headers: { 'X-CSRF': '1', Cookie: `a_session_demo=${cookie.value}` },
        signal: AbortSignal.timeout(5_000),
      });
      assert.equal(direct.status, 401);
      assert.deepEqual(pageErrors, []);
    });

    test('relay: the SDK\'s socket goes through the dev proxy to the relay, no token in the page; sign-out closes it', async (t) => {
      const { browser, page: signInPage } = await openPage(t);
      const userId = await signIn(signInPage, app.appUrl);
      await signInPage.close(); // its JWT-route socket and token requests are not this test's
      const page = await browser.context.newPage();
      const pageErrors = [];
      page.on('pageerror', (error) => pageErrors.push(error.message));
      const seen = record(page);
      await page.goto(`${app.appUrl}/?via=relay`, { timeout: 60_000 });
      const socket = await waitFor(
        'a relayed socket connected as the user',
        () => seen.sockets.find((s) => connectedFrame(s)?.data?.user?.$id === userId),
        { timeoutMs: 60_000 },
      ).catch(async (error) => {
        const sockets = seen.sockets.map((s) => ({ url: s.url, closed: s.closed, received: s.received.slice(0, 3) }));
        throw new Error(`${error.message}; page status ${await status(page)}; sockets ${JSON.stringify(sockets)}`);
      });
      assert.equal(await status(page), 'relay');
      const url = new URL(socket.url);
      assert.equal(url.origin.replace('ws:', 'http:'), app.appUrl, 'the socket goes to the page\'s own origin');
      assert.equal(url.pathname, '/v1/realtime');
      assert.equal(jwtOf(socket.url), '', 'no token on the handshake');
      await eventArrives(page, app, userId);
      assert.equal(seen.tokenResponses().length, 0, 'the relay page never asks for a token');

      const signedOutAt = Date.now();
      await page.locator('#signout').click();
      await waitFor('the relay to close the socket', () => socket.closed, { timeoutMs: (RELAY_REVALIDATE_SECONDS + 5) * 1000 });
      assert.ok(socket.closedAt - signedOutAt <= (RELAY_REVALIDATE_SECONDS + 3) * 1000, 'closed at the relay\'s next session check');
      await waitForStatus(page, 'closed');
      await sleep(2_000);
      assert.equal(seen.sockets.filter((s) => new URL(s.url).pathname === '/v1/realtime').length, 1, 'the SDK did not reconnect (1008)');
      const open = await app.demo.control('/realtime/connections?open=1');
      assert.ok(!open.some((c) => c.userId === userId), 'the upstream socket is closed too');
      assert.deepEqual(pageErrors, []);
    });
  });
}
