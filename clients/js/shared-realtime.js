/**
 * The page's side of the shared mode: every tab of this origin subscribes through one hub
 * (`realtime-hub.js`) in a `SharedWorker`, which holds one Appwrite Realtime socket and mints one
 * token per socket open for all of them. Where there is no `SharedWorker` (Chrome on Android,
 * some WebViews), its script fails to load, or another tab's hub was started with other settings,
 * the tab runs the same hub for itself: then it has its own socket, as with the helper alone.
 *
 * Like the helper, this never sees a token: the hub mints and sets it where the socket is.
 */

import { createRealtimeHub, TAB_LOCK_PREFIX } from './realtime-hub.js';

/**
 * @param {import('./shared-realtime.js').SharedRealtimeOptions} options
 * @returns {import('./shared-realtime.js').SharedRealtime}
 */
export function sharedRealtime(options) {
  const { endpoint, project, tokenUrl, relayEndpoint, worker, sdk, onStatus, onSocket } = options ?? {};
  if (typeof endpoint !== 'string' || typeof project !== 'string') {
    throw new TypeError('sharedRealtime: `endpoint` and `project` are required');
  }
  const config = { endpoint, project, tokenUrl, relayEndpoint };
  const tabId = globalThis.crypto.randomUUID();
  const locks = globalThis.navigator?.locks;
  /** @type {Map<number, { channels: string[], queries: string[], callback: (event: any) => void, settle?: { resolve: Function, reject: Function } }>} */
  const subscriptions = new Map();
  let nextId = 1;
  let status = 'pending';
  let mode = 'shared';
  let closed = false;
  /** @type {MessagePort | null} */
  let port = null;
  // Held for as long as this tab lives: the hub learns that the tab is gone when it can take it.
  /** @type {() => void} */
  let releaseLock = () => {};
  const lockHeld = locks
    ? new Promise((resolve) => {
        locks
          .request(TAB_LOCK_PREFIX + tabId, () => {
            resolve(undefined);
            return new Promise((release) => (releaseLock = () => release(undefined)));
          })
          .catch(() => resolve(undefined));
      })
    : Promise.resolve();

  function join(newPort) {
    port = newPort;
    port.onmessage = (event) => onMessage(event.data);
    port.postMessage({ type: 'hello', tabId, config });
    for (const [id, sub] of subscriptions) send({ type: 'subscribe', id, channels: sub.channels, queries: sub.queries });
  }

  /** Run the hub in this page instead (no SharedWorker, or it failed, or refused us). */
  function fallBack() {
    if (mode === 'in-page' || closed) return;
    if (!sdk) {
      setStatus('error', { code: 'shared_worker_unavailable' });
      return;
    }
    mode = 'in-page';
    port?.close();
    const hub = createRealtimeHub(sdk);
    const channel = new MessageChannel();
    hub.connect(channel.port2);
    join(channel.port1);
  }

  function send(message) {
    port?.postMessage({ ...message, tabId });
  }

  function setStatus(next, detail) {
    status = next;
    if (typeof onStatus === 'function') onStatus(next, detail ?? {});
  }

  function onMessage(message) {
    if (closed) return;
    switch (message?.type) {
      case 'welcome':
        if (message.status !== 'pending') setStatus(message.status, message.detail);
        if (message.socket?.state !== 'none') onSocket?.(message.socket);
        break;
      case 'status':
        setStatus(message.status, message.detail);
        break;
      case 'socket': {
        const { type, ...socket } = message;
        onSocket?.(socket);
        break;
      }
      case 'subscribed':
        subscriptions.get(message.id)?.settle?.resolve();
        break;
      case 'refused':
        if (message.id === undefined) fallBack(); // the hub runs with other settings
        else {
          subscriptions.get(message.id)?.settle?.reject(new Error(`subscription refused (${message.reason})`));
          subscriptions.delete(message.id);
        }
        break;
      case 'event':
        subscriptions.get(message.id)?.callback(message.event);
        break;
    }
  }

  const started = lockHeld.then(() => {
    if (closed) return;
    /** @type {any} */
    let shared;
    try {
      shared = typeof worker === 'function' ? worker() : undefined;
    } catch {
      shared = undefined; // no SharedWorker in this browser, or the URL is refused
    }
    if (!shared?.port) {
      fallBack();
      return;
    }
    // A worker script that fails to load or to start: this tab runs the hub itself.
    shared.addEventListener?.('error', fallBack);
    join(shared.port);
  });

  function close() {
    if (closed) return;
    send({ type: 'bye' });
    closed = true;
    for (const sub of subscriptions.values()) sub.settle?.reject(new Error('closed'));
    subscriptions.clear();
    port?.close();
    releaseLock();
    globalThis.removeEventListener?.('pagehide', close);
  }
  globalThis.addEventListener?.('pagehide', close);

  return {
    /** Subscribe on the shared socket; resolves once the hub subscribed. */
    async subscribe(channels, callback, queries = []) {
      if (closed) throw new Error('sharedRealtime: closed');
      const id = nextId++;
      const list = (Array.isArray(channels) ? channels : [channels]).map(String);
      const entry = { channels: list, queries: queries.map(String), callback };
      const subscribed = new Promise((resolve, reject) => {
        entry.settle = { resolve, reject };
      });
      subscriptions.set(id, entry);
      // Before the hub is joined, join() sends it with the others.
      if (port) send({ type: 'subscribe', id, channels: list, queries: entry.queries });
      await subscribed;
      return {
        close() {
          if (subscriptions.delete(id)) send({ type: 'unsubscribe', id });
        },
      };
    },
    /** Ask the hub's helper for a token now (e.g. right after signing out, to learn it). */
    async refresh() {
      await started;
      send({ type: 'refresh' });
    },
    /** This tab leaves: its subscriptions end; the last tab to leave closes the socket. */
    close,
    get status() {
      return status;
    },
    /** 'shared' (a SharedWorker holds the socket) or 'in-page' (this tab does). */
    get mode() {
      return mode;
    },
  };
}
