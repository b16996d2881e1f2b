// The tests of the example apps (examples/nuxt, examples/next, examples/sveltekit) in real Chromium, each on
// its framework's dev server with its dev proxy, against the emulator and the service: the
// server signs in with node-appwrite and keeps session.secret in an httpOnly cookie; the page
// subscribes with the web SDK and the helper (JWT route) or through the relay. What a user sees is
// asserted: the status badge, readable events, the sign-in form after sign-out, and, when something
// is misconfigured, the problem's code and its fix on the page.
//
// One file per framework (examples-<name>.test.js) calls exampleSuite(name): node --test gives
// each file its own time budget, and a framework's dev server is started once per describe.

import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { installed, startExample } from './examples.js';
import { connectedFrame, freePort, jwtOf, publishMarked, record, sleep, startBrowser, waitFor } from './support.js';

const RELAY_REVALIDATE_SECONDS = 1;
// The app server's API key variable, as each framework reads it (the apps inherit this process's environment).
const API_KEY_VARIABLE = { nuxt: 'NUXT_APPWRITE_API_KEY', next: 'APPWRITE_API_KEY', sveltekit: 'APPWRITE_API_KEY' };

/** A fresh browser for one test, closed by `t.after`; the page records sockets and responses. */
async function openPage(t) {
  const browser = await startBrowser();
  t.after(() => browser.close());
  const page = browser.context.pages()[0] ?? (await browser.context.newPage());
  const pageErrors = [];
  page.on('pageerror', (error) => pageErrors.push(error.message));
  return { browser, page, pageErrors, record: record(page) };
}

/** Sign in through the example's server-side form on `path`; resolves with the user's id on the signed-in page. */
async function signIn(page, appUrl, path = '/') {
  await page.goto(`${appUrl}${path}`, { timeout: 60_000 });
  await page.locator('#signin-button').click();
  await page.locator('#user-id').waitFor({ timeout: 60_000 });
  return (await page.locator('#user-id').textContent()).trim();
}

/**
 * Resolves once the page's framework has hydrated it. Vue's hydration writes each input's `value`
 * back from the server's HTML, so what is typed into the Nuxt page before then is lost (a slow
 * machine signs in with the prefilled password instead of the typed one). React and Svelte keep it.
 */
const HYDRATED = {
  nuxt: () => document.querySelector('#__nuxt')?.__vue_app__?.$nuxt?.isHydrating === false,
};
const hydrated = (page, name) => page.waitForFunction(HYDRATED[name] ?? (() => true), null, { timeout: 60_000 });

const status = (page) => page.locator('#status').getAttribute('data-status');
const waitForStatus = (page, wanted, timeoutMs = 10_000) =>
  waitFor(`the page's status ${wanted}`, async () => (await status(page)) === wanted, { timeoutMs }).catch(async (error) => {
    throw new Error(`${error.message}; the page says: ${await page.locator('main').innerText().catch(() => '?')}`);
  });
const text = (page, selector) => page.locator(selector).innerText();
const sessionCookie = async (browser, appUrl) => (await browser.context.cookies(appUrl)).find((c) => c.name === 'a_session_demo');
const relaySockets = (seen) => seen.sockets.filter((s) => new URL(s.url).pathname === '/v1/realtime');

/** The page is back on the sign-in form, with nothing left of the signed-in page. */
async function showsSignInForm(page) {
  await page.locator('#signin').waitFor({ timeout: 10_000 });
  const shown = await text(page, 'main');
  assert.doesNotMatch(shown, /Signed in as/, 'no stale "Signed in as"');
  assert.equal(await page.locator('#status').count(), 0, 'no status left over');
}

/** The problem the page shows under `selector`: its code, what was said, and the fix. */
async function shownProblem(page, selector) {
  await page.locator(selector).waitFor({ timeout: 10_000 });
  const detail = page.locator(`${selector} .problem-detail`);
  return {
    code: (await text(page, `${selector} .problem-code`)).trim(),
    detail: (await detail.count()) ? await detail.innerText() : '',
    fix: await text(page, `${selector} .problem-fix`),
  };
}

/** Publish an account event for the user and wait until the page lists it, readably. */
async function eventArrives(page, app, userId) {
  const { marker } = await publishMarked(app.demo, { userId });
  await waitFor(`the event ${marker} on the page`, async () => (await text(page, '#events')).includes(marker));
  const item = page.locator('#events .event', { hasText: marker });
  assert.match(await item.locator('.event-name').innerText(), /^users\.\S+\.update\.prefs$/);
  assert.equal((await item.locator('.event-fields').innerText()).trim(), `marker: ${marker}`);
  assert.doesNotMatch(await text(page, '#events'), /[{"]/, 'no JSON dumped on the page');
}

// --- Origin checks on the state-changing routes ----------------------------------------------------

const DEMO_USER = { email: 'demo@example.com', password: 'demo-password' };

/**
 * Each app's state-changing routes, as its page's forms send them: the sign-in with the demo
 * user's credentials (so that only the Origin check stands between it and a session) and the
 * sign-out. Next's sign-in is a server action: a multipart POST to the page, named by the
 * `$ACTION_ID_…` field its form carries (public: any page can read it).
 */
const STATE_CHANGING_ROUTES = {
  nuxt: async () => ({ signIn: { path: '/api/login', enctype: 'urlencoded', fields: DEMO_USER }, signOut: { path: '/api/logout' } }),
  sveltekit: async () => ({ signIn: { path: '/?/signIn', enctype: 'urlencoded', fields: DEMO_USER }, signOut: { path: '/api/logout' } }),
  next: async (appUrl) => {
    const page = await (await fetch(appUrl, { signal: AbortSignal.timeout(60_000) })).text();
    const action = page.match(/<form id="signin"[^>]*>\s*<input type="hidden" name="(\$ACTION_ID_\w+)"/)?.[1];
    assert.ok(action, 'the sign-in form names its server action');
    return { signIn: { path: '/', enctype: 'multipart', fields: { [action]: '', ...DEMO_USER } }, signOut: { path: '/api/logout' } };
  },
};

/**
 * What a request from elsewhere carries: another site's Origin, one that starts with the app's
 * own (a prefix check would take it), a sandboxed page's `null`, and no Origin at all (with or
 * without the browser's `Sec-Fetch-Site: cross-site`). Origins go without Sec-Fetch-Site, so the
 * Origin comparison alone has to refuse them.
 */
const crossSiteCallers = (appUrl) => ({
  'Origin: https://evil.example': { Origin: 'https://evil.example' },
  [`Origin: ${appUrl}.evil.example`]: { Origin: `${appUrl}.evil.example` },
  'Origin: null': { Origin: 'null' },
  'no Origin, Sec-Fetch-Site: cross-site': { 'Sec-Fetch-Site': 'cross-site' },
  'no Origin, no Sec-Fetch-Site': {},
});

/** What a browser on the app's own page sends: its Origin, or (with no Origin) Sec-Fetch-Site: same-origin. */
const sameOriginCallers = (appUrl) => ({
  [`Origin: ${appUrl}`]: { Origin: appUrl },
  'no Origin, Sec-Fetch-Site: same-origin': { 'Sec-Fetch-Site': 'same-origin' },
});

/** POST to a route with exactly these headers (and the session cookie), redirects not followed. */
async function postRoute(appUrl, { path, enctype, fields }, headers, session) {
  let body;
  if (enctype === 'urlencoded') body = new URLSearchParams(fields);
  else if (enctype === 'multipart') {
    body = new FormData();
    for (const [key, value] of Object.entries(fields)) body.set(key, value);
  }
  const response = await fetch(`${appUrl}${path}`, {
    method: 'POST',
    // Accept as a browser's form post sends it: SvelteKit answers an action asked for JSON with 200, not its 303.
    headers: { Accept: 'text/html', ...headers, ...(session && { Cookie: `a_session_demo=${session}` }) },
    body,
    redirect: 'manual',
    signal: AbortSignal.timeout(60_000),
  });
  await response.arrayBuffer();
  return response;
}

/** The session cookie a response sets (or clears): its value, or undefined when it sets none. */
const setSession = (response) =>
  response.headers.getSetCookie().find((line) => line.startsWith('a_session_demo='))?.split(';')[0].slice('a_session_demo='.length);

/** The status of a token request with this session: 200 while the session lives in Appwrite. */
const tokenStatus = async (app, session) =>
  (
    await fetch(`${app.serviceUrl}/v1/realtime/token`, {
      method: 'POST',
      headers: { 'X-CSRF': '1', Cookie: `a_session_demo=${session}` },
      signal: AbortSignal.timeout(5_000),
    })
  ).status;

/** Sign in through the app's own sign-in route, as its own page would; resolves with the session. */
async function signInSameOrigin(app, routes) {
  const response = await postRoute(app.appUrl, routes.signIn, { Origin: app.appUrl });
  assert.equal(response.status, 303, 'signed in from the app\'s own origin');
  const session = setSession(response);
  assert.ok(session, 'with the session cookie');
  return session;
}

/** A page on another site (127.0.0.1 is not localhost's site) with a form that posts to `route`. */
async function startHostilePage(t, appUrl, { path, enctype, fields }) {
  const inputs = Object.entries(fields)
    .map(([name, value]) => `<input type="hidden" name="${name}" value="${value}">`)
    .join('');
  const type = enctype === 'multipart' ? 'multipart/form-data' : 'application/x-www-form-urlencoded';
  const html = `<!doctype html><form id="csrf" method="post" action="${appUrl}${path}" enctype="${type}">${inputs}<button>Win a prize</button></form>`;
  const server = createServer((request, response) => response.writeHead(200, { 'Content-Type': 'text/html' }).end(html));
  const port = await freePort();
  await new Promise((listening) => server.listen(port, '127.0.0.1', listening));
  // Chromium keeps its connection open: close() alone would wait for it forever.
  t.after(() => new Promise((closed) => server.close(closed).closeAllConnections()));
  return `http://127.0.0.1:${port}/`;
}

/** Start the example with the app server's environment changed by `appEnv` (its dev server inherits ours). */
async function startWithAppEnv(name, appEnv, options = {}) {
  const saved = Object.fromEntries(Object.keys(appEnv).map((key) => [key, process.env[key]]));
  Object.assign(process.env, appEnv);
  try {
    return await startExample(name, options);
  } finally {
    for (const [key, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[key];
      else process.env[key] = value;
    }
  }
}

/** describe() with the example's dev server started before its tests and stopped after them. */
function withExample(name, title, start, body) {
  describe(`examples/${name}${title}`, { skip: !installed(name) && `npm ci has not run in examples/${name}` }, () => {
    const app = {};
    before(async () => {
      const startedAt = Date.now();
      Object.assign(app, await start());
      process.stdout.write(`# examples/${name}${title}: dev server ready in ${Date.now() - startedAt} ms\n`);
    }, { timeout: 180_000 });
    after(async () => {
      if (process.env.E2E_DEBUG) for (const line of app.output?.().trim().split('\n') ?? []) process.stdout.write(`# ${name}: ${line}\n`);
      await app.stop?.();
    });
    body(app);
  });
}

/** The example's tests: the JWT route and the relay on one dev server, then one misconfigured. */
export function exampleSuite(name) {
  withExample(name, '', () => startExample(name, { env: { RELAY_REVALIDATE_SECONDS: String(RELAY_REVALIDATE_SECONDS) } }), (app) => {
    test('JWT route: sign in on the server, a token through the dev proxy, live events, sign-out -> the sign-in form', async (t) => {
      const { browser, page, pageErrors, record: seen } = await openPage(t);
      const userId = await signIn(page, app.appUrl);

      const cookie = await sessionCookie(browser, app.appUrl);
      assert.ok(cookie, 'the server set the session cookie');
      assert.ok(cookie.value, 'with the session secret in it');
      assert.equal(cookie.httpOnly, true);
      assert.equal(cookie.sameSite, 'Lax');
      assert.equal(await page.evaluate(() => document.cookie.includes('a_session_demo')), false, 'page scripts cannot read it');

      await waitForStatus(page, 'authenticated', 60_000);
      assert.equal(await page.locator('#status.badge').count(), 1, 'the status is a badge');
      assert.equal(await page.locator('#problem').count(), 0, 'no problem shown');
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
      await showsSignInForm(page);
      const after = seen.tokenResponses().slice(before);
      assert.equal(after.length, 1, 'one token request after sign-out');
      assert.equal(after[0].status, 401);
      await after[0].bodyRead;
      assert.equal(JSON.parse(after[0].body).code, 'session_missing', 'the server cleared the cookie');
      assert.equal(await sessionCookie(browser, app.appUrl), undefined);
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

    test('relay: signed in on /?via=relay the page stays there; no token in the page; signed out in another tab, the relay closes the socket and the page shows the sign-in form', async (t) => {
      const { browser, page, pageErrors, record: seen } = await openPage(t);
      const userId = await signIn(page, app.appUrl, '/?via=relay');
      assert.equal(new URL(page.url()).search, '?via=relay', 'signing in kept the relay route');
      const socket = await waitFor(
        'a relayed socket connected as the user',
        () => seen.sockets.find((s) => connectedFrame(s)?.data?.user?.$id === userId),
        { timeoutMs: 60_000 },
      ).catch(async (error) => {
        const sockets = seen.sockets.map((s) => ({ url: s.url, closed: s.closed, received: s.received.slice(0, 3) }));
        throw new Error(`${error.message}; page status ${await status(page)}; sockets ${JSON.stringify(sockets)}`);
      });
      await waitForStatus(page, 'relay');
      const url = new URL(socket.url);
      assert.equal(url.origin.replace('ws:', 'http:'), app.appUrl, 'the socket goes to the page\'s own origin');
      assert.equal(url.pathname, '/v1/realtime');
      assert.equal(jwtOf(socket.url), '', 'no token on the handshake');
      await eventArrives(page, app, userId);
      assert.equal(seen.tokenResponses().length, 0, 'the relay page never asks for a token');

      // Sign out in a second tab: its own socket closes at once and it shows the sign-in form ...
      const other = await browser.context.newPage();
      const otherSeen = record(other);
      await other.goto(`${app.appUrl}/?via=relay`, { timeout: 60_000 });
      await waitForStatus(other, 'relay', 30_000);
      const signedOutAt = Date.now();
      await other.locator('#signout').click();
      await showsSignInForm(other);
      await waitFor('the second tab to close its socket', () => relaySockets(otherSeen).every((s) => s.closed));

      // ... and the relay closes the first tab's socket at its next session check; that page follows.
      await waitFor('the relay to close the socket', () => socket.closed, { timeoutMs: (RELAY_REVALIDATE_SECONDS + 5) * 1000 });
      assert.ok(socket.closedAt - signedOutAt <= (RELAY_REVALIDATE_SECONDS + 3) * 1000, 'closed at the relay\'s next session check');
      await showsSignInForm(page);
      await sleep(2_000);
      assert.equal(relaySockets(seen).length, 1, 'the SDK did not reconnect (1008)');
      const open = await app.demo.control('/realtime/connections?open=1');
      assert.ok(!open.some((c) => c.userId === userId), 'the upstream socket is closed too');
      assert.deepEqual(pageErrors, []);
    });

    test('sign-in with a wrong password: the form says so, and no cookie is set', async (t) => {
      const { browser, page, pageErrors } = await openPage(t);
      await page.goto(app.appUrl, { timeout: 60_000 });
      await hydrated(page, name);
      await page.locator('input[name=password]').fill('not-the-password');
      await page.locator('#signin-button').click();
      const problem = await shownProblem(page, '#signin-error');
      assert.equal(problem.code, 'user_invalid_credentials', 'Appwrite\'s own error type');
      assert.match(problem.fix, /^Fix: Wrong email or password/);
      assert.equal(await sessionCookie(browser, app.appUrl), undefined);
      assert.deepEqual(pageErrors, []);
    });

    test('JWT route, the app\'s host not a Web platform: the page shows Appwrite\'s refusal and says to add one', async (t) => {
      const platforms = `${app.demo.emulatorUrl}/_emulator/platforms`;
      const removed = await fetch(`${platforms}/localhost`, { method: 'DELETE', signal: AbortSignal.timeout(5_000) });
      assert.ok(removed.ok, 'the emulator forgot localhost');
      t.after(() => app.demo.control('/platforms', { hostname: 'localhost' }));
      const { page, pageErrors, record: seen } = await openPage(t);
      await signIn(page, app.appUrl);
      await waitForStatus(page, 'error', 30_000);
      const problem = await shownProblem(page, '#problem');
      assert.equal(problem.code, 'invalid_origin');
      assert.match(problem.detail, /Invalid Origin/, 'what Appwrite said');
      assert.match(problem.fix, /add this app's host \(localhost\) as a Web platform/);
      // Appwrite drops the refused connection (1006); SDK 28 alone would reconnect every second.
      const refused = seen.sockets.length;
      await sleep(2_500);
      assert.equal(seen.sockets.length, refused, 'the page stopped reconnecting');
      assert.deepEqual(pageErrors, []);
    });

    test('state-changing routes: a cross-site sign-in (another site, a look-alike origin, Origin null, no Origin) is refused with 403 and sets no session cookie', async () => {
      const routes = await STATE_CHANGING_ROUTES[name](app.appUrl);
      for (const [caller, headers] of Object.entries(crossSiteCallers(app.appUrl))) {
        const response = await postRoute(app.appUrl, routes.signIn, headers);
        assert.equal(response.status, 403, `sign-in from ${caller}`);
        assert.equal(setSession(response), undefined, `sign-in from ${caller}: no session cookie`);
      }
    });

    test('state-changing routes: a cross-site sign-out is refused with 403, leaves the cookie alone, and the session still works', async () => {
      const routes = await STATE_CHANGING_ROUTES[name](app.appUrl);
      const session = await signInSameOrigin(app, routes);
      for (const [caller, headers] of Object.entries(crossSiteCallers(app.appUrl))) {
        const response = await postRoute(app.appUrl, routes.signOut, headers, session);
        assert.equal(response.status, 403, `sign-out from ${caller}`);
        assert.equal(setSession(response), undefined, `sign-out from ${caller}: the cookie is not cleared`);
      }
      assert.equal(await tokenStatus(app, session), 200, 'the session still mints a token');
      const signedOut = await postRoute(app.appUrl, routes.signOut, { Origin: app.appUrl }, session);
      assert.equal(signedOut.status, 204);
    });

    test('state-changing routes: from the app\'s own origin (its Origin, or no Origin with Sec-Fetch-Site: same-origin) sign-in sets the cookie and sign-out ends the session', async () => {
      const routes = await STATE_CHANGING_ROUTES[name](app.appUrl);
      for (const [caller, headers] of Object.entries(sameOriginCallers(app.appUrl))) {
        const signedIn = await postRoute(app.appUrl, routes.signIn, headers);
        assert.equal(signedIn.status, 303, `sign-in from ${caller}`);
        const session = setSession(signedIn);
        assert.ok(session, `sign-in from ${caller}: the session cookie is set`);
        assert.equal(await tokenStatus(app, session), 200, `sign-in from ${caller}: the session mints a token`);
        const signedOut = await postRoute(app.appUrl, routes.signOut, headers, session);
        assert.equal(signedOut.status, 204, `sign-out from ${caller}`);
        assert.equal(setSession(signedOut), '', `sign-out from ${caller}: the cookie is cleared`);
        assert.equal(await tokenStatus(app, session), 401, `sign-out from ${caller}: the session ended in Appwrite`);
      }
    });

    test('state-changing routes, in Chromium: a form on another site\'s page that posts the sign-in (login CSRF) gets 403, and the browser keeps no session', async (t) => {
      const routes = await STATE_CHANGING_ROUTES[name](app.appUrl);
      const hostile = await startHostilePage(t, app.appUrl, routes.signIn);
      const { browser, page } = await openPage(t);
      await page.goto(hostile);
      const [response] = await Promise.all([
        page.waitForResponse((r) => r.request().method() === 'POST' && r.url().startsWith(app.appUrl), { timeout: 30_000 }),
        page.locator('#csrf button').click(),
      ]);
      assert.equal(await response.request().headerValue('origin'), new URL(hostile).origin, 'Chromium sent the hostile page\'s Origin');
      assert.equal(response.status(), 403);
      assert.equal(await sessionCookie(browser, app.appUrl), undefined, 'no session cookie in the browser');
    });
  });

  if (name === 'next') {
    // Next's rewrites send the service its own Host: without ALLOWED_ORIGINS both routes are refused.
    withExample(name, ' without ALLOWED_ORIGINS', () => startExample(name, { allowOrigin: false }), (app) => {
      test('JWT route: the page shows origin_not_allowed, what the service said, and the ALLOWED_ORIGINS fix', async (t) => {
        const { page, pageErrors, record: seen } = await openPage(t);
        await signIn(page, app.appUrl);
        await waitForStatus(page, 'error', 60_000);
        const problem = await shownProblem(page, '#problem');
        assert.equal(problem.code, 'origin_not_allowed');
        assert.match(problem.detail, new RegExp(`The origin ${app.appUrl} is neither this service's own origin`));
        assert.match(problem.fix, new RegExp(`set ALLOWED_ORIGINS=${app.appUrl} on the service`));
        assert.equal(seen.tokenResponses().length, 1, 'the helper stopped: retrying cannot help');
        assert.deepEqual(pageErrors, []);
      });

      test('relay: the page says the handshake was refused, why, and the fix; the SDK stops retrying', async (t) => {
        const { page, pageErrors, record: seen } = await openPage(t);
        await signIn(page, app.appUrl, '/?via=relay');
        await waitForStatus(page, 'error', 60_000);
        const problem = await shownProblem(page, '#problem');
        assert.equal(problem.code, 'origin_not_allowed');
        assert.match(problem.detail, /^The relay refused the handshake\. The origin /);
        assert.match(problem.fix, new RegExp(`set ALLOWED_ORIGINS=${app.appUrl} on the service`));
        const [probe] = seen.tokenResponses();
        assert.equal(probe.status, 403, 'asked without the cookie, the token route only refuses');
        const attempts = relaySockets(seen).length;
        await sleep(3_000);
        assert.equal(relaySockets(seen).length, attempts, 'no more handshakes');
        assert.deepEqual(pageErrors, []);
      });
    });
  } else {
    // The emulator, like Appwrite, takes an unknown key for none: the session comes without its secret.
    withExample(name, ' with a wrong API key', () => startWithAppEnv(name, { [API_KEY_VARIABLE[name]]: 'wrong-key' }), (app) => {
      test('sign-in: the form shows the problem and the key fix, sets no cookie, and keeps the relay route', async (t) => {
        const { browser, page, pageErrors } = await openPage(t);
        await page.goto(`${app.appUrl}/?via=relay`, { timeout: 60_000 });
        await page.locator('#signin-button').click();
        const problem = await shownProblem(page, '#signin-error');
        assert.equal(problem.code, 'no_session_secret');
        assert.match(problem.fix, new RegExp(`${API_KEY_VARIABLE[name]} \\(the app server's API key\\) is wrong or lacks the sessions.write scope`));
        assert.equal(await sessionCookie(browser, app.appUrl), undefined, 'no cookie, not even an empty one');
        assert.equal(new URL(page.url()).searchParams.get('via'), 'relay', 'still on the relay route');
        assert.equal(await page.locator('#signin').count(), 1, 'the sign-in form is still there');
        assert.deepEqual(pageErrors, []);
      });
    });
  }
}
