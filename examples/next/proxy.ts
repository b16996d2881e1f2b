// Every request that can change state (the sign-in server action, a POST to `/`; the sign-out
// route; any route or action added later) must come from this app's own pages. A cross-site page
// can make the browser send a form POST here without any CORS preflight: to sign the victim in as
// the attacker (login CSRF) or out. Next's own check covers server actions only, compares hosts
// only and lets a request without Origin through; this is SvelteKit's (`csrf.checkOrigin`), for
// every route. No matcher: a matcher that missed a path would silently skip its actions too.
import { NextResponse, type NextRequest } from 'next/server'

// What a browser may send cross-site without it meaning anything (no state changes on these).
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS'])

/**
 * Whether the browser says the request comes from this origin: its Origin is exactly ours (no
 * prefix match: `http://localhost:3000.evil.example` is another site), or, with no Origin at all,
 * `Sec-Fetch-Site: same-origin`. Browsers send Origin on every POST; a request with neither is not
 * a browser's on this app's page, so it changes nothing.
 */
function fromOwnOrigin(request: NextRequest): boolean {
  const origin = request.headers.get('origin')
  // Our origin from the Host header: nextUrl turns 127.0.0.1 and [::1] into localhost. Its scheme
  // is https when X-Forwarded-Proto says so (behind a TLS proxy).
  if (origin !== null) return origin === `${request.nextUrl.protocol}//${request.headers.get('host')}`
  return request.headers.get('sec-fetch-site') === 'same-origin'
}

export function proxy(request: NextRequest) {
  if (!SAFE_METHODS.has(request.method) && !fromOwnOrigin(request)) {
    return new NextResponse(`Cross-site ${request.method} requests are refused`, { status: 403 })
  }
  return NextResponse.next()
}
