// What went wrong and what a developer changes, for every code this page can show: the token
// service's problem codes (its application/problem+json `code`), Appwrite's refusals, and this
// app's own sign-in codes. The server (sign-in errors) and the browser (live.ts) both use it, so
// it imports nothing.

export interface Problem {
  /** Machine-readable: the service's or Appwrite's code, or this app's own. */
  code: string
  /** What the service or Appwrite said about it, when it said something. */
  detail?: string
  /** What to change. */
  fix: string
}

/** This app's environment variables, named as its framework reads them. */
export interface EnvNames {
  endpoint: string
  project: string
  apiKey: string
}

// Codes are shown and put into URLs only if they look like codes: never arbitrary text.
const CODE = /^[a-z0-9_]{1,64}$/

export const safeCode = (code: unknown): string | undefined =>
  typeof code === 'string' && CODE.test(code) ? code : undefined

/** A problem of the token service, the relay or Appwrite's Realtime, seen from the page at `origin`. */
export function liveProblem(code: string, detail: string | undefined, origin: string): Problem {
  const host = new URL(origin).hostname
  const fixes: Record<string, string> = {
    origin_not_allowed:
      `The token service refused this page's origin: set ALLOWED_ORIGINS=${origin} on the service ` +
      `(e.g. ALLOWED_ORIGINS=${origin} token-exchange demo) and restart it. A dev proxy that sends ` +
      `the service its own Host (Next's rewrites) needs this; a proxy that keeps the Host does not.`,
    relay_refused:
      'The relay refused the WebSocket handshake, and a browser cannot read why: the service\'s log ' +
      'names it (a session that ended, a channel outside RELAY_CHANNELS_ALLOW, a socket limit). ' +
      'The web SDK keeps retrying.',
    csrf_header_missing: 'Something between the page and the service drops the X-CSRF header: let it through.',
    appwrite_misconfigured:
      'The service says what to change above. jwt_auth_disabled: enable JWT in the Appwrite console ' +
      '(Auth → Settings); project_not_found: the service\'s APPWRITE_PROJECT_ID is not a project at ' +
      'its APPWRITE_ENDPOINT.',
    upstream_unavailable: 'The service cannot reach Appwrite at its APPWRITE_ENDPOINT; the helper retries.',
    upstream_timeout: 'Appwrite did not answer the service in time; the helper retries.',
    rate_limited: 'Too many token requests; the helper retries after the service\'s Retry-After.',
    network_error:
      'The page could not reach /v1/realtime/token: is the token service running where TOKEN_SERVICE_URL ' +
      'points (the app\'s dev proxy sends /v1/realtime there)?',
    bad_response:
      '/v1/realtime/token answered 200 without a token: that path is not routed to the token service ' +
      '(check TOKEN_SERVICE_URL and the dev proxy).',
    unsupported_server:
      'This Appwrite does not read ?jwt= on the Realtime handshake (self-hosted 1.9.6 or older): ' +
      'use the relay (/?via=relay).',
    unsupported_sdk: 'The appwrite web SDK is older than 26.1.0, which never sends the JWT: upgrade it.',
    invalid_origin:
      `Appwrite refused this page's origin: add this app's host (${host}) as a Web platform in the ` +
      'Appwrite console (Overview → Add platform → Web). The JWT route opens Appwrite\'s Realtime ' +
      'from the page; the relay sends no Origin and needs no platform.',
    appwrite_1008: 'Appwrite refused the socket for a policy violation, so the page stopped reconnecting: the detail says why.',
  }
  const fix =
    fixes[code] ??
    (/^http_5\d\d$/.test(code)
      ? 'The dev proxy could not reach the token service: is it running where TOKEN_SERVICE_URL points?'
      : /^http_4\d\d$/.test(code)
        ? '/v1/realtime/token is not routed to the token service: check TOKEN_SERVICE_URL and the dev proxy.'
        : 'See the token service\'s log and the code in its README\'s error table.')
  return { code, detail, fix }
}

/**
 * The sign-in form's code for what `createEmailPasswordSession` threw: Appwrite's error `type`
 * (`user_invalid_credentials`, `general_unauthorized_scope`, ...), or `appwrite_unreachable`.
 */
export function signInErrorCode(error: unknown): string {
  const { type, code } = (error ?? {}) as { type?: unknown; code?: unknown }
  return safeCode(type) ?? (typeof code === 'number' && code > 0 ? `http_${code}` : 'appwrite_unreachable')
}

/** Why signing in failed (`code` from signInErrorCode, or `no_session_secret`), and the fix. */
export function signInProblem(code: string, env: EnvNames): Problem {
  const wrongKey =
    `${env.apiKey} (the app server's API key) is wrong or lacks the sessions.write scope: create a ` +
    `key with sessions.write in the Appwrite console (Overview → Integrations → API keys) and set ${env.apiKey}.`
  const fixes: Record<string, string> = {
    user_invalid_credentials: 'Wrong email or password (the emulator\'s user is demo@example.com / demo-password).',
    no_session_secret: `Appwrite created the session but did not send its secret, which it sends only to an API key: ${wrongKey}`,
    general_unauthorized_scope: wrongKey,
    user_unauthorized: wrongKey,
    api_key_expired: wrongKey,
    project_not_found: `${env.project} is not a project at ${env.endpoint}.`,
    user_blocked: 'This user is blocked in the Appwrite console.',
    general_rate_limit_exceeded: 'Appwrite\'s rate limit for sign-ins: wait a minute.',
    appwrite_unreachable: `The app's server cannot reach Appwrite at ${env.endpoint}.`,
  }
  return { code, fix: fixes[code] ?? 'Appwrite refused the sign-in: the app server\'s log has its message.' }
}
