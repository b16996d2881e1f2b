/**
 * One Appwrite Realtime socket for every tab of a browser: the hub a `SharedWorker` runs. See
 * README.md ("Many tabs: the shared mode").
 */
import type { realtimeAuth } from './realtime-auth.js';

/** The `appwrite` web SDK's classes the hub uses. */
export interface RealtimeSdk {
  Client: new () => any;
  Realtime: new (client: any) => any;
}

export interface RealtimeHub {
  /** Serve one tab on `port`. */
  connect(port: MessagePort): void;
  /** How many tabs are connected. */
  readonly tabCount: number;
}

/** Prefix of the Web Lock each tab holds while it lives. */
export declare const TAB_LOCK_PREFIX: 'appwrite-realtime-tab ';

/** A hub for tabs that connect to it with `connect(port)`; `env` is for tests. */
export declare function createRealtimeHub(
  sdk: RealtimeSdk,
  env?: { locks?: Pick<LockManager, 'request'> | null; realtimeAuth?: typeof realtimeAuth },
): RealtimeHub;

/** Run the hub in this `SharedWorker`: call it from the worker module with the SDK's classes. */
export declare function serveSharedRealtime(sdk: RealtimeSdk): RealtimeHub;
