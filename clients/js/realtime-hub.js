/**
 * One Appwrite Realtime socket for every tab of a browser: the hub that a `SharedWorker` runs
 * (`serveSharedRealtime`), or a page runs for itself where there is no `SharedWorker`
 * (`shared-realtime.js` falls back to it). Tabs talk to it over `MessagePort`s; it holds one
 * `Client`, one `Realtime` and one `realtimeAuth` helper, subscribes for each tab on that one
 * socket and forwards the events. So 30 tabs cost one socket and one token per socket open, not 30.
 *
 * The JWT stays inside the hub: it goes from the token response to `client.setJWT()`, as with the
 * helper alone, and no message to a tab carries it. Tabs get the helper's statuses, the socket's
 * state and their events.
 *
 * Messages, tab -> hub: `hello {tabId, config}`, `subscribe {tabId, id, channels, queries}`,
 * `unsubscribe {tabId, id}`, `refresh {tabId}`, `bye {tabId}`.
 * Hub -> tab: `welcome {status, detail, socket}`, `status {status, detail}`, `socket {state, ...}`,
 * `subscribed {id}`, `refused {id?, reason}`, `event {id, event}`.
 */

import { closedBySignOut, DEFAULT_TOKEN_URL, realtimeAuth } from './realtime-auth.js';

/** A tab holds this Web Lock while it lives; the hub taking it means the tab is gone. */
export const TAB_LOCK_PREFIX = 'appwrite-realtime-tab ';
// After these the session is over: its socket is closed, and the next tab to say hello starts anew.
const ENDED = new Set(['signed-out', 'unsupported', 'error']);

/**
 * @param {{ Client: any, Realtime: any }} sdk the `appwrite` web SDK's classes
 * @param {{ locks?: any, realtimeAuth?: typeof realtimeAuth }} [env] for tests
 */
export function createRealtimeHub(sdk, env = {}) {
  const locks = 'locks' in env ? env.locks : globalThis.navigator?.locks;
  const startAuth = env.realtimeAuth ?? realtimeAuth;
  /** @type {Map<string, { port: MessagePort, subscriptions: Map<number, Promise<any>> }>} */
  const tabs = new Map();
  /** @type {any} */
  let session = null;

  function startSession(config) {
    const client = new sdk.Client().setEndpoint(config.endpoint).setProject(config.project);
    if (config.relayEndpoint) client.setEndpointRealtime(config.relayEndpoint);
    const realtime = new sdk.Realtime(client);
    const started = { config, realtime, auth: null, ready: Promise.resolve(), status: 'pending', detail: {}, socket: { state: 'none' } };
    realtime.onOpen(() => watchSocket(started, realtime.socket));
    if (config.relayEndpoint) {
      // The relay authenticates upstream with the session cookie: nothing to mint.
      started.status = 'relay';
    } else {
      started.auth = startAuth(client, {
        realtime,
        tokenUrl: config.tokenUrl ?? DEFAULT_TOKEN_URL,
        onStatus: (status, detail) => report(started, status, detail),
      });
      started.ready = started.auth.ready();
    }
    return started;
  }

  function report(current, status, detail) {
    current.status = status;
    current.detail = { ...detail };
    broadcast(current, { type: 'status', status, detail: current.detail });
    if (ENDED.has(status)) {
      // Appwrite keeps a socket open after the session ended; close it for every tab.
      current.ended = true;
      for (const tab of tabs.values()) tab.subscriptions.clear();
      void current.realtime.disconnect();
    }
  }

  /** Tell the tabs who Appwrite says the socket is, and when it closes. */
  function watchSocket(current, socket) {
    if (!socket) return;
    setSocket(current, { state: 'open' });
    socket.addEventListener('message', (/** @type {MessageEvent} */ event) => {
      if (typeof event.data !== 'string' || !event.data.includes('"connected"')) return;
      try {
        const frame = JSON.parse(event.data);
        if (frame?.type !== 'connected') return;
        const user = frame.data?.user;
        setSocket(current, { state: 'connected', user: user ? { id: user.$id, name: user.name } : null });
      } catch {
        // not a frame of interest
      }
    });
    socket.addEventListener('close', (/** @type {CloseEvent} */ event) => {
      setSocket(current, { state: 'closed', code: event.code });
      // The relay closed it because the session is over (revoked, or refused on a re-check).
      if (closedBySignOut(event)) report(current, 'signed-out', { code: event.reason });
    });
  }

  function setSocket(current, socket) {
    current.socket = socket;
    broadcast(current, { type: 'socket', ...socket });
  }

  function broadcast(current, message) {
    if (current !== session) return;
    for (const tab of tabs.values()) tab.port.postMessage(message);
  }

  function hello(port, { tabId, config }) {
    if (typeof tabId !== 'string' || !config) return;
    if (!session || session.ended) session = startSession(config);
    else if (!sameConfig(session.config, config)) {
      port.postMessage({ type: 'refused', reason: 'config_mismatch' });
      return;
    }
    tabs.set(tabId, { port, subscriptions: new Map() });
    port.postMessage({ type: 'welcome', status: session.status, detail: session.detail, socket: session.socket });
    // A tab that ends without `bye` (closed, crashed) releases its lock: then it leaves.
    locks?.request(TAB_LOCK_PREFIX + tabId, () => leave(tabId))?.catch?.(() => {});
  }

  function subscribe({ tabId, id, channels, queries }) {
    const tab = tabs.get(tabId);
    if (!tab || !session) return;
    const current = session;
    const subscription = (async () => {
      await current.ready;
      if (current.ended) throw new Error(current.status);
      return current.realtime.subscribe(channels, (/** @type {any} */ event) => tab.port.postMessage({ type: 'event', id, event }), queries ?? []);
    })();
    tab.subscriptions.set(id, subscription);
    subscription.then(
      () => tab.port.postMessage({ type: 'subscribed', id }),
      () => {
        tab.subscriptions.delete(id);
        tab.port.postMessage({ type: 'refused', id, reason: current.status });
      },
    );
  }

  function unsubscribe({ tabId, id }) {
    const subscriptions = tabs.get(tabId)?.subscriptions;
    const subscription = subscriptions?.get(id);
    subscriptions?.delete(id);
    subscription?.then((/** @type {any} */ sub) => sub.close(), () => {});
  }

  function leave(tabId) {
    const tab = tabs.get(tabId);
    if (!tab) return;
    for (const id of [...tab.subscriptions.keys()]) unsubscribe({ tabId, id });
    tabs.delete(tabId);
    if (tabs.size === 0 && session) {
      // The last tab is gone: so is the socket (a SharedWorker lingers a little after its tabs).
      session.auth?.stop();
      void session.realtime.disconnect();
      session = null;
    }
  }

  return {
    /** Serve a tab on `port`. */
    connect(/** @type {MessagePort} */ port) {
      port.onmessage = (event) => {
        const message = event.data;
        if (message?.type === 'hello') hello(port, message);
        else if (message?.type === 'subscribe') subscribe(message);
        else if (message?.type === 'unsubscribe') unsubscribe(message);
        else if (message?.type === 'refresh') void session?.auth?.refresh();
        else if (message?.type === 'bye') leave(message.tabId);
      };
    },
    /** For tests: how many tabs are connected. */
    get tabCount() {
      return tabs.size;
    },
  };
}

function sameConfig(a, b) {
  return ['endpoint', 'project', 'tokenUrl', 'relayEndpoint'].every((key) => (a[key] ?? null) === (b[key] ?? null));
}

/**
 * Run the hub in a `SharedWorker`. The worker module is three lines of the app's own:
 *
 *   import { Client, Realtime } from 'appwrite';
 *   import { serveSharedRealtime } from '@appwrite-token-exchange/realtime-auth/hub';
 *   serveSharedRealtime({ Client, Realtime });
 */
export function serveSharedRealtime(sdk) {
  const scope = /** @type {any} */ (globalThis);
  // The web SDK reaches timers and its cookie fallback through `window`, which a worker lacks; a
  // worker has no storage either, and the cookie fallback is never wanted here.
  scope.window ??= scope;
  scope.localStorage ??= { getItem: () => null, setItem: () => {}, removeItem: () => {} };
  const hub = createRealtimeHub(sdk);
  scope.onconnect = (/** @type {MessageEvent} */ event) => hub.connect(event.ports[0]);
  return hub;
}
