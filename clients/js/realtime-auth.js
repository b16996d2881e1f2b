/**
 * Keeps the Appwrite web SDK's Realtime socket authenticated with short-lived JWTs.
 *
 * The page's Appwrite session lives in an httpOnly cookie that browser JS never sees, so the
 * socket is authenticated with a JWT minted by the token-exchange service
 * (`POST /v1/realtime/token`). The web SDK (`appwrite` >= 26.1.0) puts `client.config.jwt` into
 * the socket URL (`&jwt=`) every time it opens a socket, including on each of its own
 * reconnects, and Appwrite checks it only then, at the handshake. So a token is needed exactly
 * when a socket is about to open, and this module mints one then: before the first socket, when
 * a socket closes (the SDK waits at least 1 s before reconnecting, time enough to mint), when the
 * server refuses a socket's JWT (error frame 401), and on `visibilitychange`/`online` only while
 * a socket is about to open. Never on a timer while a socket is open: an open tab costs nothing.
 * If the server refuses the JWT because a valid Appwrite session cookie came with it, the cookie
 * is all the socket needs: the JWT is removed and the helper stops (status 'cookie').
 *
 * The JWT is only ever handed to `client.setJWT()`: it is not kept in this module, written to
 * storage, logged, or put into a status detail or an error.
 *
 * No dependencies; browser APIs it uses (fetch, timers, performance.now,
 * document, window) can all be injected through `options.env`, which is how the tests run it
 * in Node.
 */

/** Default path of the token-exchange endpoint. */
export const DEFAULT_TOKEN_URL = '/v1/realtime/token';

// 26.1.0 is the first web SDK that appends `&jwt=` to the Realtime URL; older ones never send it.
const MIN_SDK_VERSION = [26, 1, 0];
// setTimeout delays above 2^31-1 ms overflow to "now" in browsers.
const MAX_TIMER_MS = 2 ** 31 - 1;
// Only these frames matter here; testing for them first avoids parsing every event frame twice.
const FRAME_OF_INTEREST = /"type"\s*:\s*"(?:connected|error)"/;
// Problem `code`s are echoed into status details only if they look like our stable codes, so an
// unexpected body can never smuggle arbitrary text into the page's logs.
const SAFE_CODE = /^[a-z0-9_]{1,64}$/;
// Appwrite's `user_jwt_and_cookie_set` (403) has no machine-readable code on the socket, only
// its message ("JWT and cookie used in the same request. ..."); other 403s (a blocked user, a
// refused origin) must not match, so the code alone is not enough.
const JWT_AND_COOKIE = /\bJWT and cookie\b/i;

/**
 * Why `ready()` rejected: the helper reached a final state before a token was set.
 * Carries the status and the problem `code`, never a token.
 */
/**
 * Why the relay closes a socket when its session is over, with close code 1008 (which stops the
 * SDK): 'signed_out' (the app or Appwrite's webhook revoked it) or 'session_ended' (Appwrite
 * refused it on a re-check). Pages on the relay read such a close as `signed-out`.
 */
export const RELAY_SIGN_OUT_REASONS = Object.freeze(['signed_out', 'session_ended']);

/** @param {{ code?: number, reason?: string } | null | undefined} event a socket's `close` event */
export function closedBySignOut(event) {
  return event?.code === 1008 && RELAY_SIGN_OUT_REASONS.includes(event.reason ?? '');
}

export class RealtimeAuthError extends Error {
  /**
   * @param {string} status final status ('signed-out', 'unsupported', 'error' or 'stopped')
   * @param {string} [code] stable machine-readable code, e.g. 'session_invalid'
   * @param {number} [httpStatus] HTTP status of the token response, if there was one
   */
  constructor(status, code, httpStatus) {
    super(`realtime auth ${status}${code ? ` (${code})` : ''}`);
    this.name = 'RealtimeAuthError';
    this.status = status;
    this.code = code;
    this.httpStatus = httpStatus;
  }
}

/**
 * Start minting `client`'s JWT for each Realtime socket it opens. The first fetch starts at once.
 *
 * Statuses passed to `onStatus(status, detail)`:
 * - 'authenticated' `{userId, expiresIn}`: a fresh JWT was handed to `client.setJWT()`
 *   (after every successful fetch);
 * - 'backing-off' `{code, httpStatus?, retryInMs, attempt}`: the fetch failed for a reason that
 *   may pass (429, 5xx, network, timeout); it is retried after `retryInMs`;
 * - 'signed-out' `{code, httpStatus}`: 401 (session_missing, session_invalid, mfa_required) or
 *   403 user_blocked; final;
 * - 'unsupported' `{reason}`: the server (reason 'server') or the SDK (reason 'sdk') cannot
 *   authenticate Realtime with a JWT; final;
 * - 'error' `{code, httpStatus?}`: misconfiguration (403 csrf/origin, other 4xx, a 200 that is
 *   not a token), or Appwrite refused the socket by policy (error frame 1008: code
 *   'platform_not_registered' for "Invalid Origin", else 'policy_violation'; the watched
 *   `Realtime` instances are then disconnected, as the SDK would retry it for ever); final.
 * - 'cookie' `{reason: 'cookie-session'}`: the server refused a socket for carrying a JWT next
 *   to a valid Appwrite session cookie (403 "JWT and cookie used in the same request"), so the
 *   browser already sends that cookie to Appwrite and it authenticates Realtime on its own:
 *   this service is not needed for this socket. The JWT is removed from the client
 *   (`client.setJWT('')`) so the SDK's next reconnect opens without it; `ready()` resolves;
 *   final.
 * After a final status every timer and listener is gone and nothing is fetched again.
 *
 * @param {import('./realtime-auth.js').JwtClient} client the Appwrite `Client` that the page subscribes with
 * @param {import('./realtime-auth.js').RealtimeAuthOptions} [options]
 * @returns {import('./realtime-auth.js').RealtimeAuth}
 */
export function realtimeAuth(client, options = {}) {
  if (!client || typeof client.setJWT !== 'function') {
    throw new TypeError('realtimeAuth: the first argument must be an Appwrite Client');
  }
  const {
    tokenUrl = DEFAULT_TOKEN_URL,
    realtime,
    onStatus,
    minRefreshIntervalSeconds = 10,
    backoffBaseMs = 1000,
    backoffCapMs = 60_000,
    fetchTimeoutMs = 15_000,
    env = {},
  } = options;

  const g = /** @type {any} */ (globalThis);
  const fetchFn = env.fetch ?? (g.fetch ? g.fetch.bind(g) : undefined);
  if (typeof fetchFn !== 'function') throw new TypeError('realtimeAuth: no fetch available');
  const setTimer = env.setTimeout ?? g.setTimeout.bind(g);
  const clearTimer = env.clearTimeout ?? g.clearTimeout.bind(g);
  // Expiry is tracked on a monotonic clock from the moment a token arrives, never against the
  // wall clock: a browser's Date can be off by minutes and can jump.
  const now = env.now ?? (() => g.performance.now());
  const random = env.random ?? Math.random;
  const doc = 'document' in env ? env.document : g.document;
  const win = 'window' in env ? env.window : g.window;
  const minRefreshMs = minRefreshIntervalSeconds * 1000;

  /** @type {string} */
  let status = 'pending';
  let stopped = false;
  /** @type {Promise<void> | null} */
  let inflight = null;
  /** @type {unknown} */
  let timer;
  let tokenReceivedAt = -Infinity;
  let tokenExpiresAt = -Infinity;
  // Counts the tokens set so far. Each socket remembers the count when it was seen, so a token
  // with a higher number has not been carried by that socket yet (the module keeps no token).
  let tokenSerial = 0;
  // Set while backing off after an HTTP answer (429/5xx): nothing but the scheduled retry may
  // fetch before then, so Retry-After is a floor even for refresh() and page events.
  let retryNotBefore = -Infinity;
  // Set when the server refused a token younger than minRefreshIntervalSeconds (error frame
  // 401): a server that keeps refusing fresh tokens must not turn each reconnect into a mint.
  let mintNotBefore = -Infinity;
  let failures = 0;
  // A socket closed and the SDK will open another: page events may then mint for it. The
  // number is that of the last token the closed socket could have carried.
  let reconnectPending = false;
  let closedSerial = 0;
  // A socket came up as a guest although its URL carried a JWT: its session is gone (signed out
  // elsewhere, rotated) or the server ignores `?jwt=`. A fresh token tells them apart: 401 means
  // signed-out; otherwise the guest socket is closed so that the SDK reconnects with the fresh
  // token, and only if that socket is a guest too does the server not read `?jwt=`.
  /** @type {any} */
  let guestSocket = null;
  let proofSerial = 0;
  const halt = new AbortController();
  /** @type {Array<() => void>} */
  const cleanups = [];

  /** @type {(value: void) => void} */
  let resolveReady = () => {};
  /** @type {(reason: Error) => void} */
  let rejectReady = () => {};
  /** @type {Promise<void>} */
  const readyPromise = new Promise((resolve, reject) => {
    resolveReady = resolve;
    rejectReady = reject;
  });
  // A page that never calls ready() must not get an unhandled rejection when it signs out.
  readyPromise.catch(() => {});

  function emit(next, detail) {
    status = next;
    if (typeof onStatus !== 'function') return;
    try {
      onStatus(next, detail);
    } catch (err) {
      // The page's bug must not break the helper, nor be swallowed.
      queueMicrotask(() => {
        throw err;
      });
    }
  }

  function schedule(delayMs) {
    clearTimer(timer);
    timer = setTimer(() => {
      timer = undefined;
      attempt();
    }, Math.min(MAX_TIMER_MS, Math.max(0, delayMs)));
  }

  /** Ends everything; `final` is emitted unless it is 'stopped' (the caller asked for it). */
  function finish(final, detail) {
    if (stopped) return;
    stopped = true;
    clearTimer(timer);
    timer = undefined;
    halt.abort();
    for (const cleanup of cleanups.splice(0)) cleanup();
    if (final === 'stopped') status = 'stopped';
    else emit(final, detail);
    // 'cookie' is not a failure: the socket works (through the cookie), so a page awaiting
    // ready() may go on and subscribe. A ready() that already settled stays as it was.
    if (final === 'cookie') resolveReady();
    else rejectReady(new RealtimeAuthError(final, detail?.code, detail?.httpStatus));
  }

  /** One fetch at a time: concurrent callers share the attempt in flight. Never rejects. */
  function attempt() {
    if (stopped) return Promise.resolve();
    if (inflight) return inflight;
    clearTimer(timer);
    timer = undefined;
    const run = (async () => {
      let outcome;
      try {
        outcome = await fetchToken();
      } catch {
        // The error itself is not passed on: its message may quote the request.
        outcome = halt.signal.aborted ? null : { kind: 'transient', code: 'network_error' };
      }
      inflight = null;
      if (outcome && !stopped) settle(outcome);
    })();
    inflight = run;
    return run;
  }

  // Each tab fetches on its own, at once: the SDK reconnects 1 s after a close, and a queue
  // across tabs (a reconnect storm of 30 tabs) would make late tabs reconnect with an old token.
  // The service's per-session limit is sized for a burst of dozens of tabs.

  async function fetchToken() {
    if (stopped) return null;
    const controller = new AbortController();
    const onHalt = () => controller.abort();
    halt.signal.addEventListener('abort', onHalt);
    let timedOut = false;
    const timeout = setTimer(() => {
      timedOut = true;
      controller.abort();
    }, fetchTimeoutMs);
    try {
      const res = await fetchFn(tokenUrl, {
        method: 'POST',
        credentials: 'include',
        headers: { 'X-CSRF': '1', Accept: 'application/json' },
        signal: controller.signal,
      });
      const receivedAt = now();
      if (res.ok) {
        const body = await res.json().catch(() => null);
        const expiresIn = body?.expiresIn;
        if (
          typeof body?.jwt !== 'string' ||
          body.jwt === '' ||
          typeof expiresIn !== 'number' ||
          !(expiresIn > 0)
        ) {
          return { kind: 'final', status: 'error', code: 'bad_response', httpStatus: res.status };
        }
        if (stopped) return null;
        client.setJWT(body.jwt);
        const userId = typeof body.userId === 'string' ? body.userId : undefined;
        return { kind: 'token', receivedAt, expiresIn, userId };
      }
      const problem = await res.json().catch(() => null);
      const code =
        typeof problem?.code === 'string' && SAFE_CODE.test(problem.code)
          ? problem.code
          : `http_${res.status}`;
      if (res.status === 401 || (res.status === 403 && code === 'user_blocked')) {
        return { kind: 'final', status: 'signed-out', code, httpStatus: res.status };
      }
      if (res.status === 408 || res.status === 429 || res.status >= 500) {
        const retryAfterMs = parseRetryAfter(res.headers?.get?.('Retry-After'));
        return { kind: 'transient', code, httpStatus: res.status, retryAfterMs };
      }
      return { kind: 'final', status: 'error', code, httpStatus: res.status };
    } catch (err) {
      if (timedOut) return { kind: 'transient', code: 'timeout' };
      throw err;
    } finally {
      clearTimer(timeout);
      halt.signal.removeEventListener('abort', onHalt);
    }
  }

  function settle(outcome) {
    if (outcome.kind === 'token') {
      failures = 0;
      retryNotBefore = -Infinity;
      tokenReceivedAt = outcome.receivedAt;
      tokenExpiresAt = outcome.receivedAt + outcome.expiresIn * 1000;
      tokenSerial += 1;
      if (guestSocket) {
        // The session is valid (a token was just minted for it): reopen the guest socket with it.
        proofSerial = tokenSerial;
        const socket = guestSocket;
        guestSocket = null;
        socket.close?.(1000);
      }
      emit('authenticated', { userId: outcome.userId, expiresIn: outcome.expiresIn });
      resolveReady();
      return;
    }
    if (outcome.kind === 'transient') {
      // Full jitter: uniform in [0, min(cap, base * 2^n)], so tabs that failed together spread
      // out; the server's Retry-After is a floor on top.
      const ceiling = Math.min(backoffCapMs, backoffBaseMs * 2 ** failures);
      failures += 1;
      const delay = Math.max(outcome.retryAfterMs ?? 0, random() * ceiling);
      // A network failure has no server asking us to wait, so `online` may retry at once.
      retryNotBefore = outcome.httpStatus ? now() + delay : -Infinity;
      schedule(delay);
      /** @type {Record<string, unknown>} */
      const detail = { code: outcome.code, retryInMs: Math.round(delay), attempt: failures };
      if (outcome.httpStatus) detail.httpStatus = outcome.httpStatus;
      emit('backing-off', detail);
      return;
    }
    finish(outcome.status, { code: outcome.code, httpStatus: outcome.httpStatus });
  }

  /** For refresh(): fetch now unless one is in flight or the server asked us to wait. */
  function refreshNow() {
    if (stopped) return Promise.resolve();
    if (inflight) return inflight;
    if (now() < retryNotBefore) return Promise.resolve();
    return attempt();
  }

  // A token is good for the next socket if no socket has carried it yet and it is in the first
  // half of its life: the SDK opens that socket 1 s after a close (5, 10 or 60 s after many
  // failed attempts; a token that expired by then is refused with 401 and minted again).
  function unusedTokenWaiting(seenSerial) {
    return tokenSerial > seenSerial && now() < (tokenReceivedAt + tokenExpiresAt) / 2;
  }

  /** A socket is about to open, and the last one carried token number `seenSerial`. */
  function mintForNextSocket(seenSerial) {
    if (stopped || inflight || unusedTokenWaiting(seenSerial)) return;
    const waitMs = Math.max(retryNotBefore, mintNotBefore) - now();
    if (waitMs <= 0) attempt();
    else if (timer === undefined) schedule(waitMs); // a backoff retry may be pending already
  }

  // ---- watching the SDK's sockets -------------------------------------------------------------
  //
  // The SDK has no documented hook that hands out the `connected` frame: the `Realtime` service
  // keeps `user` nowhere, and the deprecated `client.subscribe()` path keeps only
  // `client.realtime.lastMessage`, which the very next frame (the subscribe response) overwrites,
  // so polling it would miss the frame. Instead this adds its own `message` listener to each
  // socket the SDK opens, next to the SDK's, without replacing anything of the SDK's on the
  // message path:
  // - `Realtime` service (new API): its documented `onOpen()` callback runs once the socket is
  //   open and before any frame arrives; the socket is the instance's `socket` property.
  // - `client.subscribe()` (deprecated API): `client.realtime.createSocket` is the function the
  //   SDK calls (through the property, so a wrapper takes effect) for every connect and
  //   reconnect; it creates `client.realtime.socket` synchronously, so a listener added right
  //   after it returns sees every frame. stop() puts the original back.
  // Both are the same in `appwrite` 26.1.0 to 28.0.0; the tests drive 26.1.0 and the newest.
  // A socket's `close` is when the next token is minted, unless the SDK will not open another:
  // it already opened the socket's successor (the deprecated API reopens on every change of URL)
  // or nothing is subscribed any more (`disconnect()`, the last `close()`). These read the SDK's
  // `socket` and subscription maps, unchanged from 26.1.0 to 28.0.0; where they are missing, the
  // helper assumes a reconnect.
  // A guest `connected` frame only means "unsupported", and a 403 "JWT and cookie" error frame
  // only means "cookie", if that socket's URL carried a JWT (WebSocket.url): a socket opened
  // before the first token is not the server's fault, nor about our JWT.

  /** @typedef {{ current: () => any, subscribed: () => boolean }} SocketOwner */
  /** @type {Map<any, { serial: number, detach: () => void }>} */
  const watched = new Map();

  /** @param {any} socket @param {SocketOwner} owner */
  function watchSocket(socket, owner) {
    if (stopped || !socket || typeof socket.addEventListener !== 'function') return;
    if (watched.has(socket)) return;
    reconnectPending = false;
    const serial = tokenSerial;
    const onMessage = (/** @type {any} */ event) => onFrame(socket, serial, event?.data);
    const onClose = (/** @type {any} */ event) => {
      detach();
      const replaced = owner.current() !== socket && owner.current()?.readyState < 2;
      if (stopped || replaced || !owner.subscribed() || event?.code === 1008) return;
      reconnectPending = true;
      closedSerial = serial;
      mintForNextSocket(serial);
    };
    const detach = () => {
      socket.removeEventListener('message', onMessage);
      socket.removeEventListener('close', onClose);
      watched.delete(socket);
    };
    socket.addEventListener('message', onMessage);
    socket.addEventListener('close', onClose);
    watched.set(socket, { serial, detach });
  }
  cleanups.push(() => {
    for (const { detach } of [...watched.values()]) detach();
  });

  /** @param {any} socket @param {number} serial the number of the token its URL carried, if any */
  function onFrame(socket, serial, data) {
    if (stopped || typeof data !== 'string' || !FRAME_OF_INTEREST.test(data)) return;
    let message;
    try {
      message = JSON.parse(data);
    } catch {
      return;
    }
    if (message?.type === 'connected') {
      if (message.data?.user != null) {
        proofSerial = 0;
      } else if (urlCarriesJwt(socket.url)) {
        if (proofSerial && serial >= proofSerial) {
          // A token minted after an earlier guest socket, so for a live session, connected as
          // a guest too: this server does not read `?jwt=` on the handshake.
          finish('unsupported', { reason: 'server' });
          return;
        }
        // Any token minted from now on proves the session (a backoff retry included).
        guestSocket = socket;
        refreshNow();
      }
    } else if (message?.type === 'error') {
      const code = Number(message.data?.code);
      const text = message.data?.message;
      if (code === 401) {
        // The handshake's JWT was refused (expired, e.g. after the machine slept). The SDK
        // reconnects in >= 1 s and will read whatever JWT the client holds by then; a token this
        // young refused again waits out the minimum interval.
        if (serial === tokenSerial && now() - tokenReceivedAt < minRefreshMs) {
          mintNotBefore = tokenReceivedAt + minRefreshMs;
        }
        mintForNextSocket(serial);
      } else if (code === 1008) {
        // A policy refusal (e.g. "Invalid Origin": the page's origin is not a Web platform of
        // the project). Appwrite then drops the connection (1006), which SDK 28's `Realtime`
        // service reconnects from every second, for ever: stop it, it can only be refused again.
        const fix = typeof text === 'string' && /invalid origin/i.test(text) ? 'platform_not_registered' : 'policy_violation';
        finish('error', { code: fix });
        for (const service of services) void service.disconnect?.();
      } else if (
        code === 403 &&
        typeof text === 'string' &&
        JWT_AND_COOKIE.test(text) &&
        urlCarriesJwt(socket.url)
      ) {
        // The browser sends a valid Appwrite session cookie on the handshake (e.g. a
        // parent-domain `a_session_<project>` cookie with Appwrite on a sibling host), and the
        // server refuses a JWT next to it. Any JWT we set would loop the SDK on this refusal,
        // so take it away: the SDK's next reconnect opens without `?jwt=` and the cookie
        // authenticates it. Cleared before finish() so onStatus already sees a client without it.
        client.setJWT('');
        finish('cookie', { reason: 'cookie-session' });
      }
    }
  }

  const legacy = /** @type {any} */ (client).realtime;
  if (legacy && typeof legacy.createSocket === 'function') {
    const original = legacy.createSocket;
    /** @type {SocketOwner} */
    const owner = { current: () => legacy.socket, subscribed: () => !(legacy.subscriptions?.size < 1) };
    const wrapped = function (/** @type {any[]} */ ...args) {
      const result = original.apply(this, args);
      watchSocket(legacy.socket, owner);
      if (result && typeof result.then === 'function') {
        result.then(
          () => watchSocket(legacy.socket, owner),
          () => {},
        );
      }
      return result;
    };
    legacy.createSocket = wrapped;
    watchSocket(legacy.socket, owner);
    cleanups.push(() => {
      if (legacy.createSocket === wrapped) legacy.createSocket = original;
    });
  }

  const services = realtime == null ? [] : Array.isArray(realtime) ? realtime : [realtime];
  for (const service of services) {
    /** @type {SocketOwner} */
    const owner = { current: () => service?.socket, subscribed: () => !(service?.activeSubscriptions?.size < 1) };
    // onOpen callbacks cannot be unregistered; after stop() this one does nothing.
    if (typeof service?.onOpen === 'function') service.onOpen(() => watchSocket(service.socket, owner));
    watchSocket(service?.socket, owner);
  }

  // ---- page events ------------------------------------------------------------------------------
  // A socket that closed while the tab slept or the network was gone reopens when the page is
  // back: mint for it then, unless a token no socket has used yet is waiting. While a socket is
  // open, these events cost nothing.
  const onPageBack = () => {
    if (reconnectPending || tokenSerial === 0) mintForNextSocket(closedSerial);
  };
  if (doc && typeof doc.addEventListener === 'function') {
    const onVisibility = () => {
      if (doc.visibilityState === 'visible') onPageBack();
    };
    doc.addEventListener('visibilitychange', onVisibility);
    cleanups.push(() => doc.removeEventListener('visibilitychange', onVisibility));
  }
  if (win && typeof win.addEventListener === 'function') {
    win.addEventListener('online', onPageBack);
    cleanups.push(() => win.removeEventListener('online', onPageBack));
  }

  const sdkVersion = /** @type {any} */ (client).headers?.['x-sdk-version'];
  if (typeof sdkVersion === 'string' && versionBelow(sdkVersion, MIN_SDK_VERSION)) {
    // Deferred so that onStatus never runs before realtimeAuth() has returned.
    queueMicrotask(() => finish('unsupported', { reason: 'sdk', sdkVersion }));
  } else {
    attempt();
  }

  return Object.freeze({
    ready: () => readyPromise,
    refresh: () => refreshNow(),
    stop: () => finish('stopped'),
    get status() {
      return status;
    },
  });
}

function urlCarriesJwt(url) {
  try {
    return Boolean(new URL(String(url)).searchParams.get('jwt'));
  } catch {
    return false;
  }
}

/** Retry-After as milliseconds: delta-seconds, or an HTTP-date (then the wall clock is the only reference there is). */
function parseRetryAfter(value) {
  if (value == null) return undefined;
  const text = String(value).trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const at = Date.parse(text);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}

function versionBelow(version, minimum) {
  const match = /^(\d+)\.(\d+)\.(\d+)/.exec(version);
  if (!match) return false;
  for (let i = 0; i < 3; i += 1) {
    const part = Number(match[i + 1]);
    if (part !== minimum[i]) return part < minimum[i];
  }
  return false;
}
