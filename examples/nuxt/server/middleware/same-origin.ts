// Every request that can change state (the sign-in and sign-out routes, and any POST route added
// later) must come from this app's own pages. A cross-site page can make the browser send a form
// POST here without any CORS preflight: to sign the victim in as the attacker (login CSRF) or out.
// Nuxt has no such check of its own; this is SvelteKit's (`csrf.checkOrigin`), for every content type.
import type { H3Event } from 'h3'

// What a browser may send cross-site without it meaning anything (no state changes on these).
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS'])

/**
 * Whether the browser says the request comes from this origin: its Origin is exactly ours (no
 * prefix match: `http://localhost:3000.evil.example` is another site), or, with no Origin at all,
 * `Sec-Fetch-Site: same-origin`. Browsers send Origin on every POST; a request with neither is not
 * a browser's on this app's page, so it changes nothing.
 */
function fromOwnOrigin(event: H3Event): boolean {
  const origin = getRequestHeader(event, 'origin')
  // h3's request URL: the Host header, https when X-Forwarded-Proto says so (behind a TLS proxy).
  if (origin !== undefined) return origin === getRequestURL(event).origin
  return getRequestHeader(event, 'sec-fetch-site') === 'same-origin'
}

export default defineEventHandler((event) => {
  if (!SAFE_METHODS.has(event.method) && !fromOwnOrigin(event)) {
    throw createError({ statusCode: 403, statusMessage: `Cross-site ${event.method} requests are refused` })
  }
})
