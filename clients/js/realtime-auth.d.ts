/**
 * Keeps the Appwrite web SDK's Realtime socket authenticated with short-lived JWTs from the
 * token-exchange service. See README.md.
 */

/** What the helper needs from an Appwrite `Client` (structural, so any SDK version type-checks). */
export interface JwtClient {
  setJWT(jwt: string): unknown;
}

/** What the helper uses of an Appwrite `Realtime` service instance. */
export interface RealtimeService {
  onOpen(callback: () => void): void;
}

/** Detail passed with each status. Codes are the token service's problem `code`s. */
export interface StatusDetails {
  /** A fresh JWT was handed to `client.setJWT()` (after every successful fetch). */
  authenticated: { userId?: string; expiresIn: number };
  /** A fetch failed for a reason that may pass; retried after `retryInMs`. */
  'backing-off': {
    /** e.g. 'rate_limited', 'upstream_unavailable', 'network_error', 'timeout' */
    code: string;
    httpStatus?: number;
    retryInMs: number;
    /** 1 for the first failure in a row */
    attempt: number;
  };
  /** Final: 401 (session_missing, session_invalid, mfa_required) or 403 user_blocked. */
  'signed-out': { code: string; httpStatus?: number };
  /**
   * Final: JWTs cannot authenticate Realtime here. 'server': a socket whose URL carried a JWT
   * came up as a guest (server without `?jwt=` support); 'sdk': `appwrite` older than 26.1.0.
   */
  unsupported: { reason: 'server' | 'sdk'; sdkVersion?: string };
  /**
   * Final: misconfiguration (403 csrf/origin, other 4xx, 'bad_response' for a 200 without a
   * token), or Appwrite refusing the socket by policy (error frame 1008, no `httpStatus`):
   * 'platform_not_registered' (the page's origin is not a Web platform of the project) or
   * 'policy_violation'. On a 1008 the watched `Realtime` instances are disconnected.
   */
  error: { code: string; httpStatus?: number };
  /**
   * Final, and not a failure: Realtime is authenticated by the Appwrite session cookie; this
   * service is not needed for this socket. The server refused a socket whose URL carried a JWT
   * because a valid session cookie came with it (403 "JWT and cookie used in the same request",
   * e.g. a parent-domain `a_session_<project>` cookie with Appwrite on a sibling host). The JWT
   * is removed from the client (`setJWT('')`), so the SDK reconnects with the cookie alone;
   * `ready()` resolves.
   */
  cookie: { reason: 'cookie-session' };
}

export type RealtimeAuthStatus = keyof StatusDetails;

/** `[status, detail]` pairs; narrowing on `status` narrows `detail`. */
export type StatusEvent = {
  [S in RealtimeAuthStatus]: [status: S, detail: StatusDetails[S]];
}[RealtimeAuthStatus];

/** Browser APIs the helper uses; each defaults to the global one. For tests. */
export interface RealtimeAuthEnv {
  fetch?: (input: string, init: RequestInit) => Promise<Response>;
  setTimeout?: (callback: () => void, ms: number) => unknown;
  clearTimeout?: (handle: any) => void;
  /** Monotonic milliseconds (default `performance.now()`). */
  now?: () => number;
  /** Uniform in [0, 1) (default `Math.random`). */
  random?: () => number;
  /** Target of `visibilitychange` (default `document`). */
  document?: Pick<EventTarget, 'addEventListener' | 'removeEventListener'> & {
    readonly visibilityState: string;
  };
  /** Target of `online` (default `window`). */
  window?: Pick<EventTarget, 'addEventListener' | 'removeEventListener'>;
}

export interface RealtimeAuthOptions {
  /** Token endpoint, fetched with POST, `credentials: 'include'`, `X-CSRF: 1`. Default '/v1/realtime/token'. */
  tokenUrl?: string;
  /** `Realtime` service instance(s) to watch, when the page uses `new Realtime(client)`. */
  realtime?: RealtimeService | RealtimeService[];
  onStatus?: (...event: StatusEvent) => void;
  /** A token the server refuses (error frame 401) within this long of its arrival is replaced only after it. Default 10. */
  minRefreshIntervalSeconds?: number;
  /** Backoff: delay is random in [0, min(cap, base * 2^n)], at least Retry-After. Defaults 1000 / 60000. */
  backoffBaseMs?: number;
  backoffCapMs?: number;
  /** Abort a token fetch after this long (then back off). Default 15000. */
  fetchTimeoutMs?: number;
  env?: RealtimeAuthEnv;
}

export interface RealtimeAuth {
  /**
   * Resolves once the first JWT is set, or on 'cookie' (the socket works without one); rejects
   * with RealtimeAuthError on any other final status before that. Once settled, it stays so.
   */
  ready(): Promise<void>;
  /** Fetch a new JWT now, unless one is in flight (joins it) or the server asked to wait (no-op). Never rejects. Not needed for reconnects: the helper mints for each socket the SDK opens. */
  refresh(): Promise<void>;
  /** Stop minting; removes every timer and listener. Leaves the client's current JWT in place (only 'cookie' removes it). */
  stop(): void;
  /** 'pending' until the first outcome, 'stopped' after stop(). */
  readonly status: RealtimeAuthStatus | 'pending' | 'stopped';
}

export declare const DEFAULT_TOKEN_URL: '/v1/realtime/token';

/** The reasons the relay gives, with close code 1008, when a socket's session is over. */
export declare const RELAY_SIGN_OUT_REASONS: readonly ['signed_out', 'session_ended'];

/** True for a relayed socket's `close` event that means the session is over (read it as signed-out). */
export declare function closedBySignOut(event: { code?: number; reason?: string } | null | undefined): boolean;

export declare class RealtimeAuthError extends Error {
  constructor(status: string, code?: string, httpStatus?: number);
  readonly name: 'RealtimeAuthError';
  readonly status: 'signed-out' | 'unsupported' | 'error' | 'stopped';
  readonly code: string | undefined;
  readonly httpStatus: number | undefined;
}

/** Start minting `client`'s JWT for each Realtime socket it opens; the first fetch starts immediately. */
export declare function realtimeAuth(client: JwtClient, options?: RealtimeAuthOptions): RealtimeAuth;
