/**
 * The page's side of the shared mode: subscribe through one hub (and one socket) for every tab.
 * See README.md ("Many tabs: the shared mode").
 */
import type { RealtimeAuthStatus, StatusDetails } from './realtime-auth.js';
import type { RealtimeSdk } from './realtime-hub.js';

/** What the hub says of its socket. */
export type SharedSocketState =
  | { state: 'open' }
  | { state: 'connected'; user: { id: string; name?: string } | null }
  | { state: 'closed'; code: number };

export interface SharedRealtimeOptions {
  /** Appwrite's API endpoint, e.g. 'https://cloud.appwrite.io/v1'. */
  endpoint: string;
  project: string;
  /** The token service's endpoint; default '/v1/realtime/token'. */
  tokenUrl?: string;
  /** Subscribe through the service's relay at this `ws(s)://…/v1` URL instead: no token at all. */
  relayEndpoint?: string;
  /**
   * Makes the shared worker, e.g.
   * `() => new SharedWorker(new URL('./realtime-worker.js', import.meta.url), { type: 'module', name: 'appwrite-realtime' })`.
   * Where it throws or the worker fails to start, the tab runs the hub itself (needs `sdk`).
   */
  worker?: () => SharedWorker;
  /** The SDK's classes, for running the hub in this tab where there is no SharedWorker. */
  sdk?: RealtimeSdk;
  /** The hub helper's statuses (as realtimeAuth's), or 'relay' on the relay; replayed to a tab that joins late. */
  onStatus?: (status: RealtimeAuthStatus | 'relay', detail: StatusDetails[RealtimeAuthStatus] | Record<string, never>) => void;
  /** The shared socket's state. */
  onSocket?: (socket: SharedSocketState) => void;
}

export interface SharedSubscription {
  close(): void;
}

export interface SharedRealtime {
  /** Subscribe on the shared socket; resolves once the hub subscribed, rejects if it cannot (e.g. signed out). */
  subscribe(channels: string | string[], callback: (event: any) => void, queries?: string[]): Promise<SharedSubscription>;
  /** Ask the hub's helper for a token now (e.g. right after signing out, to learn it). */
  refresh(): Promise<void>;
  /** This tab leaves; the last tab to leave closes the socket. Also done on `pagehide`. */
  close(): void;
  readonly status: RealtimeAuthStatus | 'relay' | 'pending';
  /** 'shared': a SharedWorker holds the socket; 'in-page': this tab does. */
  readonly mode: 'shared' | 'in-page';
}

export declare function sharedRealtime(options: SharedRealtimeOptions): SharedRealtime;
