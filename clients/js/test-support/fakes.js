// Test doubles for running realtime-auth.js in Node: a manual clock, a scripted fetch, a Web
// Locks manager, page event targets, and a fake WebSocket for driving the real Appwrite SDK.
// Lives outside test/ because `node --test` would run every .js file under test/ as a test file.

/** Let promise chains (including undici's Response body reads) settle. */
export async function flush(rounds = 10) {
  for (let i = 0; i < rounds; i += 1) await new Promise((resolve) => setImmediate(resolve));
}

/** A manual monotonic clock with setTimeout/clearTimeout; time moves only in advance(). */
export function fakeClock() {
  let time = 0;
  let seq = 0;
  const timers = new Map();
  return {
    now: () => time,
    setTimeout: (fn, ms = 0) => {
      seq += 1;
      timers.set(seq, { at: time + Math.max(0, ms), fn });
      return seq;
    },
    clearTimeout: (id) => {
      timers.delete(id);
    },
    /** Delays from now of the pending timers, ascending. */
    pending: () => [...timers.values()].map((t) => t.at - time).sort((a, b) => a - b),
    /** Move time forward, firing due timers in order and letting each one's promises settle. */
    async advance(ms) {
      const end = time + ms;
      for (let fired = 0; ; fired += 1) {
        // A zero-delay timer that re-arms itself would otherwise hang the test run.
        if (fired > 10_000) throw new Error('fake clock: timers keep re-arming');
        await flush();
        let nextId;
        let next;
        for (const [id, t] of timers) {
          if (t.at <= end && (!next || t.at < next.at)) {
            nextId = id;
            next = t;
          }
        }
        if (!next) break;
        time = next.at;
        timers.delete(nextId);
        next.fn();
      }
      time = end;
      await flush();
    },
  };
}

export function tokenResponse(jwt, expiresIn = 900, extra = {}) {
  return new Response(
    JSON.stringify({
      jwt,
      expiresIn,
      // Deliberately wrong: the helper must schedule from expiresIn, not from this.
      expiresAt: '2001-01-01T00:00:00Z',
      userId: 'user-1',
      ...extra,
    }),
    { status: 200, headers: { 'content-type': 'application/json', 'cache-control': 'no-store' } },
  );
}

export function problemResponse(status, code, headers = {}) {
  return new Response(
    JSON.stringify({ type: `https://errors.example/${code}`, title: code, status, detail: code, code }),
    { status, headers: { 'content-type': 'application/problem+json', ...headers } },
  );
}

/**
 * fetch that answers from a script. Each entry is a Response, an Error to throw, or a function
 * (url, init) => Response | Promise<Response>. When the script is empty it answers `fallback`.
 */
export function scriptedFetch(script = [], fallback = () => tokenResponse('jwt-fallback')) {
  const calls = [];
  const queue = [...script];
  const fetch = async (url, init) => {
    calls.push({ url, init });
    const next = queue.length ? queue.shift() : fallback;
    if (next instanceof Error) throw next;
    return typeof next === 'function' ? next(url, init) : next;
  };
  return { fetch, calls, queue };
}

/** A deferred value: a promise plus its resolve/reject. */
export function deferred() {
  let resolve;
  let reject;
  const promise = new Promise((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** An exclusive Web Locks manager for one origin; hold() plays another tab holding the lock. */
export function fakeLocks() {
  const requests = [];
  let tail = Promise.resolve();
  let held = 0;
  const run = (name, options, callback) => {
    const mine = tail.then(() => {
      if (options?.signal?.aborted) throw new DOMException('aborted', 'AbortError');
      held += 1;
      return Promise.resolve()
        .then(() => callback({ name, mode: 'exclusive' }))
        .finally(() => {
          held -= 1;
        });
    });
    tail = mine.catch(() => {});
    return mine;
  };
  return {
    requests,
    isHeld: () => held > 0,
    request(name, options, callback) {
      if (typeof options === 'function') {
        callback = options;
        options = {};
      }
      requests.push({ name, options });
      return run(name, options, callback);
    },
    /** Take the lock as "another tab"; returns the function that releases it. */
    hold(name) {
      const release = deferred();
      const taken = deferred();
      run(name, {}, () => {
        taken.resolve();
        return release.promise;
      });
      return { taken: taken.promise, release: () => release.resolve() };
    },
  };
}

/** An EventTarget that counts its listeners, as document or window. */
export function pageTarget(props = {}) {
  const target = new EventTarget();
  const live = new Map();
  const add = target.addEventListener.bind(target);
  const remove = target.removeEventListener.bind(target);
  target.addEventListener = (type, fn, opts) => {
    live.set(type, (live.get(type) ?? 0) + 1);
    add(type, fn, opts);
  };
  target.removeEventListener = (type, fn, opts) => {
    live.set(type, (live.get(type) ?? 1) - 1);
    remove(type, fn, opts);
  };
  target.listenerCount = (type) => live.get(type) ?? 0;
  return Object.assign(target, props);
}

/** The usual env: fake clock, scripted fetch, no locks, counted page targets. */
export function testEnv({ script, fallback, locks, random = () => 0.5 } = {}) {
  const clock = fakeClock();
  const net = scriptedFetch(script, fallback);
  const document = pageTarget({ visibilityState: 'visible' });
  const window = pageTarget();
  const env = {
    fetch: net.fetch,
    setTimeout: clock.setTimeout,
    clearTimeout: clock.clearTimeout,
    now: clock.now,
    random,
    locks,
    document,
    window,
  };
  return { env, clock, net, document, window };
}

/** Minimal stand-in for an Appwrite Client. */
export function fakeClient() {
  const jwts = [];
  return {
    jwts,
    config: { jwt: '' },
    setJWT(value) {
      jwts.push(value);
      this.config.jwt = value;
      return this;
    },
  };
}

/** Records onStatus calls. */
export function statusLog() {
  const events = [];
  const onStatus = (status, detail) => events.push({ status, detail });
  return { events, onStatus, statuses: () => events.map((e) => e.status) };
}

// ---- the real SDK in Node --------------------------------------------------------------------

/** A WebSocket the test plays the server for. */
export class FakeWebSocket extends EventTarget {
  static CONNECTING = 0;
  static OPEN = 1;
  static CLOSING = 2;
  static CLOSED = 3;
  static instances = [];

  constructor(url) {
    super();
    this.url = url;
    this.readyState = FakeWebSocket.CONNECTING;
    this.sent = [];
    FakeWebSocket.instances.push(this);
  }

  send(data) {
    this.sent.push(data);
  }

  close(code = 1000) {
    if (this.readyState >= FakeWebSocket.CLOSING) return;
    this.readyState = FakeWebSocket.CLOSING;
    setImmediate(() => this.serverClose(code));
  }

  serverOpen() {
    this.readyState = FakeWebSocket.OPEN;
    this.dispatchEvent(new Event('open'));
  }

  serverSend(frame) {
    this.dispatchEvent(new MessageEvent('message', { data: JSON.stringify(frame) }));
  }

  serverClose(code = 1006, reason = '') {
    if (this.readyState === FakeWebSocket.CLOSED) return;
    this.readyState = FakeWebSocket.CLOSED;
    this.dispatchEvent(Object.assign(new Event('close'), { code, reason }));
  }

  jwtParam() {
    return new URL(this.url).searchParams.get('jwt');
  }
}

/**
 * Give the SDK the browser globals it touches (window timers and localStorage, WebSocket).
 * Its timers are unref'd so a forgotten heartbeat cannot keep the test process alive.
 */
export function installBrowserGlobals() {
  const unref = (handle) => {
    handle?.unref?.();
    return handle;
  };
  const storage = new Map();
  globalThis.window = {
    setTimeout: (fn, ms) => unref(setTimeout(fn, ms)),
    clearTimeout: (h) => clearTimeout(h),
    setInterval: (fn, ms) => unref(setInterval(fn, ms)),
    clearInterval: (h) => clearInterval(h),
    localStorage: {
      getItem: (k) => (storage.has(k) ? storage.get(k) : null),
      setItem: (k, v) => storage.set(k, String(v)),
      removeItem: (k) => storage.delete(k),
    },
  };
  globalThis.WebSocket = FakeWebSocket;
  FakeWebSocket.instances.length = 0;
  return { storage };
}

/** Wait (real time) until `predicate()` holds; the SDK debounces connects with real timers. */
export async function until(predicate, timeoutMs = 3000) {
  const start = Date.now();
  while (!predicate()) {
    if (Date.now() - start > timeoutMs) throw new Error('timed out waiting for condition');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/**
 * What the helper reads of the SDK's `Realtime` service (`socket`, `activeSubscriptions`,
 * `onOpen`), for unit tests; `open()` plays the SDK opening a socket with the client's JWT.
 */
export function fakeRealtime(client) {
  const onOpen = [];
  const service = {
    socket: undefined,
    activeSubscriptions: new Map([['sub-1', { channels: ['account'] }]]),
    onOpen: (callback) => onOpen.push(callback),
    open() {
      const jwt = client.config.jwt ? `&jwt=${encodeURIComponent(client.config.jwt)}` : '';
      const socket = new FakeWebSocket(`wss://appwrite.test/v1/realtime?project=p${jwt}`);
      service.socket = socket;
      socket.serverOpen();
      for (const callback of onOpen) callback();
      return socket;
    },
    async disconnect() {
      service.activeSubscriptions.clear();
      service.socket?.close(1000);
    },
  };
  return service;
}

/**
 * Hooks for a test file that drives the real SDK: browser globals before each test; after it,
 * the test's cleanups (last first), every fake socket closed, and the console back (the SDK logs
 * its reconnects: quiet keeps the output readable). Returns the array tests push cleanups to.
 */
export function useRealSdk({ beforeEach, afterEach }) {
  const cleanups = [];
  let saved;
  beforeEach(() => {
    installBrowserGlobals();
    saved = { log: console.log, error: console.error };
    console.log = () => {};
    console.error = () => {};
  });
  afterEach(async () => {
    for (const fn of cleanups.splice(0).reverse()) await fn();
    for (const ws of FakeWebSocket.instances) ws.serverClose(1000);
    console.log = saved.log;
    console.error = saved.error;
  });
  return cleanups;
}
