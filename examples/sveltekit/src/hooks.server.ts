// Every request that can change state (a sign-in, a sign-out, any form action or POST route) must
// come from this app's own pages. A cross-site page can make the browser send a form POST here
// without any CORS preflight: to sign the victim in as the attacker (login CSRF) or out. SvelteKit's
// own check (`csrf.checkOrigin`) is the model, but it is off under `vite dev` and covers form
// content types only; this one runs always and for every content type.
import { text, type Handle } from '@sveltejs/kit';

// What a browser may send cross-site without it meaning anything (no state changes on these).
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * Whether the browser says the request comes from this origin: its Origin is exactly ours (no
 * prefix match: `http://localhost:5173.evil.example` is another site), or, with no Origin at all,
 * `Sec-Fetch-Site: same-origin`. Browsers send Origin on every POST; a request with neither is not
 * a browser's on this app's page, so it changes nothing.
 */
function fromOwnOrigin(request: Request, ownOrigin: string): boolean {
  const origin = request.headers.get('origin');
  if (origin !== null) return origin === ownOrigin;
  return request.headers.get('sec-fetch-site') === 'same-origin';
}

export const handle: Handle = async ({ event, resolve }) => {
  // event.url.origin is what SvelteKit's own check compares with (behind a proxy: ORIGIN, or
  // adapter-node's PROTOCOL_HEADER and HOST_HEADER).
  if (!SAFE_METHODS.has(event.request.method) && !fromOwnOrigin(event.request, event.url.origin)) {
    return text(`Cross-site ${event.request.method} requests are refused`, { status: 403 });
  }
  return resolve(event);
};
