// Every documented way to deploy the service (docs/deploy.md), as users run it: nginx terminates
// TLS in front of the app, Appwrite and the service (`token-exchange serve`), Chromium reaches
// them under real host names, and the page uses the official web SDK with the helper from
// clients/js. Each scenario checks what the user sees (status, token fields, events, the helper's
// status, every header line) and what Appwrite saw (calls counted by the emulator).

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  APP,
  APPWRITE_CUSTOM_DOMAIN,
  APPWRITE_ELSEWHERE,
  HOSTILE,
  headerValues,
  repeatedHeaders,
  startDeployment,
} from './deployment.js';
import { rawHttps } from './proxy.js';
import {
  connectedFrame,
  jwtOf,
  pageState,
  publishMarked,
  signIn,
  sleep,
  subscribed,
  waitFor,
  waitForEvent,
} from './support.js';

const JWT_CALLS = 'POST /v1/account/jwts';
const ACCOUNT_CALLS = 'GET /v1/account';

/** Start one deployment for a `describe` block; its logs become diagnostics when a test fails. */
function deployment(options) {
  const holder = {};
  before(async () => {
    holder.stack = await startDeployment(options);
  });
  after(async () => {
    await holder.stack?.stop();
  });
  return holder;
}

async function onFailure(t, stack, body) {
  try {
    await body();
  } catch (error) {
    if (stack) for (const line of (await stack.diagnostics()).split('\n')) t.diagnostic(line);
    throw error;
  }
}

/** Sign in on the app through the proxy and wait for the helper's first final-or-ok status. */
async function signedInPage(stack, query) {
  // Each test signs in afresh: a new Appwrite session, and no cookie left from the last test.
  await stack.browser.context.clearCookies();
  const opened = await stack.newPage();
  await signIn(opened.page, APP, query);
  const state = await pageState(opened.page);
  return { ...opened, userId: state.config.user.id };
}

const statusesOf = async (page) => (await pageState(page)).statuses.map((s) => s.status);

/** The recorded token responses, once their bodies and header lines are read. */
async function tokenResponses(record) {
  const responses = record.tokenResponses();
  await Promise.all(responses.flatMap((r) => [r.bodyRead, r.headersRead]));
  return responses;
}

/** A page-visible token: the fields the helper and generated clients rely on. */
function assertToken(response, userId) {
  assert.equal(response.status, 200, response.body);
  const token = JSON.parse(response.body);
  assert.deepEqual(Object.keys(token).sort(), ['expiresAt', 'expiresIn', 'jwt', 'userId']);
  assert.equal(token.userId, userId);
  assert.equal(token.jwt.split('.').length, 3, 'a JWS compact token');
  assert.ok(token.expiresIn > 0 && token.expiresIn <= 30, `expiresIn ${token.expiresIn}`);
  assert.ok(Date.parse(token.expiresAt) > Date.now());
  assert.deepEqual(repeatedHeaders(response.headerLines), [], 'no header line twice');
  assert.deepEqual(headerValues(response.headerLines, 'cache-control'), ['no-store']);
}

/** The socket Appwrite accepted as `userId`, then an event published to that user arrives. */
async function assertLiveEvents(stack, opened) {
  const socket = await waitFor('a socket connected as the user', () =>
    opened.record.sockets.find((s) => connectedFrame(s)?.data?.user?.$id === opened.userId),
  );
  await waitFor('the subscription', () => subscribed(socket));
  await waitForEvent(opened.page, (await publishMarked(stack, { userId: opened.userId })).marker);
  return socket;
}

describe('same host behind a TLS proxy (TRUSTED_PROXIES = the proxy)', () => {
  const held = deployment({ topology: 'same-host' });

  test('token, socket, event: the page is https, the service trusts the proxy and sees the browser', async (t) => {
    const { stack } = held;
    await onFailure(t, stack, async () => {
      const callsBefore = await stack.appwriteCalls();
      const opened = await signedInPage(stack, 'via=jwt');
      await waitFor('the helper to authenticate', async () => (await statusesOf(opened.page)).includes('authenticated'));
      const [token] = await tokenResponses(opened.record);
      assert.equal(token.url, `${APP}/v1/realtime/token`, 'same origin as the page');
      assertToken(token, opened.userId);
      assert.deepEqual(headerValues(token.headerLines, 'access-control-allow-origin'), [], 'same origin needs no CORS');

      const socket = await assertLiveEvents(stack, opened);
      const url = new URL(socket.url);
      assert.equal(url.origin, `wss://${APPWRITE_ELSEWHERE}`);
      assert.ok(jwtOf(socket.url), 'the socket carried the JWT');

      // The service saw the browser's address through the proxy, and Appwrite one call per token.
      const issued = stack.serviceLog('token.issued');
      assert.ok(issued.length >= 1);
      assert.ok(issued.every((line) => line.client_ip === '127.0.0.1' && line.origin === APP), JSON.stringify(issued));
      const tokens = (await tokenResponses(opened.record)).filter((r) => r.status === 200).length;
      const callsAfter = await stack.appwriteCalls();
      assert.equal((callsAfter[JWT_CALLS] ?? 0) - (callsBefore[JWT_CALLS] ?? 0), tokens);
      const proxied = (await stack.proxy.accessLog()).filter((l) => l.path === '/v1/realtime/token');
      assert.ok(proxied.every((l) => l.host === 'app.example.test' && l.method === 'POST' && l.cookie));
      assert.deepEqual(opened.errors, []);
    });
  });
});

describe('relay over wss:// through the proxy (self-hosted 1.9)', () => {
  const held = deployment({ topology: 'same-host', mode: '1.9' });

  test('events arrive through the relay, and the page never holds a token', async (t) => {
    const { stack } = held;
    await onFailure(t, stack, async () => {
      const opened = await signedInPage(stack, 'via=relay');
      const socket = await assertLiveEvents(stack, opened);
      const url = new URL(socket.url);
      assert.equal(`${url.protocol}//${url.host}${url.pathname}`, 'wss://app.example.test/v1/realtime');
      assert.deepEqual([...url.searchParams.keys()], ['project'], 'no token in the handshake URL');
      assert.equal(opened.record.tokenResponses().length, 0, 'no token was ever fetched');
      const bodies = (await opened.record.bodies()).map((b) => b.body).join('\n');
      assert.doesNotMatch(bodies, /"jwt"\s*:/, 'no response to the page carries a JWT');
      assert.match(await opened.page.locator('#token-life').textContent(), /never holds one/);

      // Upstream, Appwrite saw the relay as the user, with the browser's address forwarded.
      const open = await stack.control('/realtime/connections?open=1');
      const relayed = open.find((c) => c.userId === opened.userId);
      assert.ok(relayed, JSON.stringify(open));
      assert.equal(relayed.forwardedFor, '127.0.0.1');
      const [audit] = stack.serviceLog('relay.opened');
      assert.equal(audit.client_ip, '127.0.0.1');
      // nginx logs a WebSocket when it ends: the upgrade went through the proxy as a 101.
      await opened.page.close();
      await waitFor('nginx to log the relayed socket', async () =>
        (await stack.proxy.accessLog()).some((l) => l.path === '/v1/realtime' && l.status === 101 && l.host === 'app.example.test'),
      );
    });
  });
});

describe('subdomain: the service on realtime.example.test, CORS for the app, parent-domain cookie', () => {
  const held = deployment({ topology: 'subdomain', cookieDomain: 'example.test' });

  test('token after a preflight and with credentials, then socket and event', async (t) => {
    const { stack } = held;
    await onFailure(t, stack, async () => {
      const opened = await signedInPage(stack, 'via=jwt');
      const cookie = (await stack.browser.context.cookies(APP)).find((c) => c.name === 'a_session_demo');
      assert.deepEqual(
        { domain: cookie.domain, httpOnly: cookie.httpOnly, secure: cookie.secure, sameSite: cookie.sameSite },
        { domain: '.example.test', httpOnly: true, secure: true, sameSite: 'Lax' },
      );
      await waitFor('the helper to authenticate', async () => (await statusesOf(opened.page)).includes('authenticated'));
      const [token] = await tokenResponses(opened.record);
      assert.equal(token.url, `${stack.serviceUrl}/v1/realtime/token`, 'cross-origin, to the service host');
      assertToken(token, opened.userId);
      assert.deepEqual(headerValues(token.headerLines, 'access-control-allow-origin'), [APP]);
      assert.deepEqual(headerValues(token.headerLines, 'access-control-allow-credentials'), ['true']);
      await assertLiveEvents(stack, opened);

      // The browser asked first (preflight), then sent the cookie with the POST.
      const log = (await stack.proxy.accessLog()).filter((l) => l.host === 'realtime.example.test');
      assert.ok(log.some((l) => l.method === 'OPTIONS' && l.status === 204), JSON.stringify(log));
      assert.ok(log.some((l) => l.method === 'POST' && l.status === 200 && l.cookie), JSON.stringify(log));
    });
  });

  test('the preflight through the proxy, line by line: one grant for the app, none for anyone else', async (t) => {
    const { stack } = held;
    await onFailure(t, stack, async () => {
      const ask = (origin) =>
        rawHttps(stack.proxy, {
          host: 'realtime.example.test',
          method: 'OPTIONS',
          path: '/v1/realtime/token',
          headers: { Origin: origin, 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'x-csrf' },
        });
      const granted = await ask(APP);
      assert.equal(granted.status, 204);
      assert.deepEqual(repeatedHeaders(granted.headers), [], JSON.stringify(granted.headers));
      assert.deepEqual(headerValues(granted.headers, 'access-control-allow-origin'), [APP]);
      assert.deepEqual(headerValues(granted.headers, 'access-control-allow-credentials'), ['true']);
      assert.match(headerValues(granted.headers, 'access-control-allow-headers')[0], /x-csrf/i);
      for (const origin of [HOSTILE, 'https://app.example.test.evil.test', 'null']) {
        const refused = await ask(origin);
        assert.equal(refused.status, 403, origin);
        assert.deepEqual(repeatedHeaders(refused.headers), []);
        assert.deepEqual(headerValues(refused.headers, 'access-control-allow-origin'), [], origin);
      }
    });
  });

  test('the relay on the service host: the parent-domain cookie authenticates the socket', async (t) => {
    const { stack } = held;
    await onFailure(t, stack, async () => {
      const opened = await signedInPage(stack, 'via=relay');
      const socket = await assertLiveEvents(stack, opened);
      assert.equal(new URL(socket.url).host, 'realtime.example.test');
      assert.equal(opened.record.tokenResponses().length, 0);
    });
  });

  test('a hostile page on a sibling host gets nothing, though the cookie rides along, and Appwrite sees no call', async (t) => {
    const { stack } = held;
    await onFailure(t, stack, async () => {
      // The visitor is signed in on the app; its pages are closed so nothing else calls Appwrite.
      const victim = await signedInPage(stack, 'via=relay');
      await victim.page.close();
      for (const page of stack.browser.context.pages()) await page.close();
      await sleep(300);
      const callsBefore = await stack.appwriteCalls();
      const logBefore = (await stack.proxy.accessLog()).length;

      const { page } = await stack.newPage();
      await page.goto(`${HOSTILE}/`);
      const target = `${stack.serviceUrl}/v1/realtime/token`;
      const relay = `wss://realtime.example.test/v1/realtime?project=demo&channels%5B%5D=account`;
      const outcome = await page.evaluate(
        async ({ target, relay }) => {
          const attempt = async (init) => {
            try {
              const response = await fetch(target, { method: 'POST', credentials: 'include', ...init });
              return { type: response.type, status: response.status, body: await response.text() };
            } catch (error) {
              return { error: error.name };
            }
          };
          const socket = await new Promise((done) => {
            const frames = [];
            const ws = new WebSocket(relay);
            ws.onmessage = (event) => frames.push(String(event.data));
            ws.onclose = (event) => done({ code: event.code, frames });
          });
          return {
            withCsrfHeader: await attempt({ headers: { 'X-CSRF': '1' } }),
            simplePost: await attempt({ headers: { 'Content-Type': 'text/plain' }, body: '{}' }),
            noCors: await attempt({ mode: 'no-cors' }),
            socket,
          };
        },
        { target, relay },
      );
      assert.deepEqual(outcome.withCsrfHeader, { error: 'TypeError' }, 'the preflight is refused');
      assert.deepEqual(outcome.simplePost, { error: 'TypeError' }, 'no CORS grant: the answer is unreadable');
      assert.deepEqual(outcome.noCors, { type: 'opaque', status: 0, body: '' });
      assert.equal(outcome.socket.code, 1006, 'the relay refused the handshake');
      assert.deepEqual(outcome.socket.frames, []);

      // The session cookie did reach the service (same site, SameSite=Lax), and was refused.
      const attempts = (await stack.proxy.accessLog()).slice(logBefore).filter((l) => l.host === 'realtime.example.test');
      assert.ok(attempts.some((l) => l.method === 'POST' && l.cookie && l.status === 403), JSON.stringify(attempts));
      assert.ok(attempts.some((l) => l.method === 'OPTIONS' && l.status === 403), JSON.stringify(attempts));
      assert.ok(attempts.some((l) => l.path === '/v1/realtime' && l.status === 403 && l.cookie), JSON.stringify(attempts));
      const denied = stack.serviceLog('token.denied').filter((l) => l.origin === HOSTILE);
      assert.deepEqual([...new Set(denied.map((l) => l.outcome))], ['csrf_header_missing']);
      assert.deepEqual(await stack.appwriteCalls(), callsBefore, 'Appwrite saw no call at all');
    });
  });
});

describe('misconfigured: same host behind the TLS proxy without TRUSTED_PROXIES', () => {
  const held = deployment({ topology: 'same-host', trustProxy: false });

  test('the user sees origin_not_allowed naming TRUSTED_PROXIES, the log says it once, Appwrite sees nothing', async (t) => {
    const { stack } = held;
    await onFailure(t, stack, async () => {
      const callsBefore = await stack.appwriteCalls();
      const opened = await signedInPage(stack, 'via=jwt');
      await waitFor('the helper to stop with an error', async () => (await statusesOf(opened.page)).includes('error'));
      const { statuses } = await pageState(opened.page);
      assert.deepEqual(statuses.at(-1), { status: 'error', detail: { code: 'origin_not_allowed', httpStatus: 403 } });
      assert.match(await opened.page.locator('#auth-status').textContent(), /origin_not_allowed, HTTP 403/);
      const [refusal] = await tokenResponses(opened.record);
      const problem = JSON.parse(refusal.body);
      assert.equal(problem.code, 'origin_not_allowed');
      assert.match(problem.detail, /TRUSTED_PROXIES/);
      assert.match(problem.detail, /http:\/\/app\.example\.test/, 'says how the service saw the request');

      const warnings = stack.serviceLog('config.proxy_not_trusted');
      assert.equal(warnings.length, 1);
      assert.match(warnings[0].hint, /TRUSTED_PROXIES/);
      assert.equal(warnings[0].peer, '127.0.0.2', 'names the proxy it did not trust');
      // Without the setting every browser shares the proxy's address, and so its per-IP limit.
      assert.ok(stack.serviceLog('token.denied').every((l) => l.client_ip === '127.0.0.2'));
      const callsAfter = await stack.appwriteCalls();
      assert.equal(callsAfter[JWT_CALLS] ?? 0, callsBefore[JWT_CALLS] ?? 0, 'no token was minted');
    });
  });
});

describe('Appwrite on a custom domain under the parent domain (the session cookie reaches Realtime)', () => {
  const held = deployment({ topology: 'same-host', appwriteHost: APPWRITE_CUSTOM_DOMAIN, cookieDomain: 'example.test' });

  test('the helper sees JWT-and-cookie refused, drops the JWT, and the cookie authenticates the socket', async (t) => {
    const { stack } = held;
    await onFailure(t, stack, async () => {
      const opened = await signedInPage(stack, 'via=jwt');
      await waitFor('the helper to report the cookie', async () => (await statusesOf(opened.page)).includes('cookie'), {
        timeoutMs: 15_000,
      });
      const socket = await assertLiveEvents(stack, opened);
      assert.equal(new URL(socket.url).host, APPWRITE_CUSTOM_DOMAIN);
      assert.equal(jwtOf(socket.url), '', 'the socket that works carries no JWT');
      const refused = opened.record.sockets.find((s) => jwtOf(s.url));
      assert.ok(refused, 'the first socket carried a JWT');
      assert.deepEqual(
        refused.received.find((frame) => frame.type === 'error')?.data?.code,
        403,
        'Appwrite refused JWT and cookie together',
      );
      // No loop: no more sockets and no more tokens once the helper stopped.
      const sockets = opened.record.sockets.length;
      await sleep(3_000);
      assert.equal(opened.record.sockets.length, sockets, 'the SDK stopped reconnecting');
      assert.ok(sockets <= 3, `${sockets} sockets`);
      const statuses = await statusesOf(opened.page);
      assert.equal(statuses.filter((s) => s === 'cookie').length, 1, statuses.join(','));
      assert.equal(statuses.at(-1), 'cookie');
      assert.equal(opened.record.tokenResponses().length, 1);
      // Both handshakes carried the session cookie (nginx logs a socket once it has ended).
      await opened.page.close();
      const handshakes = await waitFor('nginx to log both sockets', async () => {
        const lines = (await stack.proxy.accessLog()).filter((l) => l.host === APPWRITE_CUSTOM_DOMAIN && l.path === '/v1/realtime');
        return lines.length === sockets && lines;
      });
      assert.ok(handshakes.every((l) => l.cookie), JSON.stringify(handshakes));
    });
  });
});

describe('no service at all: Appwrite on a custom domain, the session cookie authenticates Realtime', () => {
  const held = deployment({ topology: 'same-host', appwriteHost: APPWRITE_CUSTOM_DOMAIN, cookieDomain: 'example.test', mode: '1.9' });

  test('the unmodified SDK, no helper and no token: the socket is the user, events arrive', async (t) => {
    const { stack } = held;
    await onFailure(t, stack, async () => {
      const opened = await signedInPage(stack, 'via=cookie');
      const socket = await assertLiveEvents(stack, opened);
      assert.equal(new URL(socket.url).host, APPWRITE_CUSTOM_DOMAIN);
      assert.equal(jwtOf(socket.url), '');
      assert.equal(opened.record.tokenResponses().length, 0);
      const toService = (await stack.proxy.accessLog()).filter((l) => l.path.startsWith('/v1/realtime') && l.host !== APPWRITE_CUSTOM_DOMAIN);
      assert.deepEqual(toService, [], 'the service was never called');
      assert.deepEqual(opened.errors, []);
    });
  });
});
