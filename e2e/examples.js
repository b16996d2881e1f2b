// The example apps (examples/*): each framework's own dev server, started the way its README
// starts it, pointed at a `token-exchange demo` (emulator + service) on free ports.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { REPO, freePort, startDemo, startProcess } from './support.js';

// How long a dev server may take to answer its first page (a cold compile on 2 shared cores).
const FIRST_PAGE_TIMEOUT_MS = 120_000;

/**
 * Per framework: its dev server's command line for a port, and the environment that points it at
 * the emulator (`endpoint`) and the service (`service`), in that framework's own conventions.
 * `rewritesHost`: its dev proxy sends the service's own Host (Next.js: httpxy with changeOrigin,
 * not configurable), so the service must list the app's origin in ALLOWED_ORIGINS.
 */
export const EXAMPLES = {
  nuxt: {
    args: (port) => ['dev', '--host', '127.0.0.1', '--port', String(port)],
    bin: 'nuxt',
    env: ({ endpoint, service }) => ({ NUXT_PUBLIC_APPWRITE_ENDPOINT: endpoint, TOKEN_SERVICE_URL: service }),
  },
  next: {
    args: (port) => ['dev', '--hostname', '127.0.0.1', '--port', String(port)],
    bin: 'next',
    rewritesHost: true,
    env: ({ endpoint, service }) => ({ APPWRITE_ENDPOINT: endpoint, TOKEN_SERVICE_URL: service }),
  },
  sveltekit: {
    args: (port) => ['dev', '--host', '127.0.0.1', '--port', String(port), '--strictPort'],
    bin: 'vite',
    env: ({ endpoint, service }) => ({ APPWRITE_ENDPOINT: endpoint, TOKEN_SERVICE_URL: service }),
  },
};

/** Whether `npm ci` has run in examples/<name> (scripts/test does it). */
export const installed = (name) => existsSync(join(REPO, 'examples', name, 'node_modules', '.bin', EXAMPLES[name].bin));

/**
 * The emulator with its demo user and the service (`token-exchange demo`, as the examples' READMEs
 * start them; with ALLOWED_ORIGINS set to the app's origin for a dev proxy that rewrites Host),
 * plus examples/<name>'s dev server. `env`: the service's settings; `dir`: where the app is (a
 * copy elsewhere); `allowOrigin: false` leaves ALLOWED_ORIGINS unset even where the dev proxy needs it.
 * Resolves once the dev server has rendered its first page;
 * returns { demo, serviceUrl, appUrl, output(), stop() }.
 */
export async function startExample(name, { mode = 'cloud', env = {}, dir = join(REPO, 'examples', name), allowOrigin = true } = {}) {
  const example = EXAMPLES[name];
  const port = await freePort();
  // The browser opens the app as localhost and Appwrite as 127.0.0.1: cookies ignore ports, so on
  // one host name the app's session cookie would reach Appwrite too (its status: 'cookie').
  const appUrl = `http://localhost:${port}`;
  const stoppers = [];
  const stop = async () => {
    for (const stopOne of stoppers.reverse()) await stopOne();
  };
  try {
    // A dev proxy that rewrites Host reaches the service cross-origin: the app's origin is allowed.
    const allowed = example.rewritesHost && allowOrigin ? { ALLOWED_ORIGINS: appUrl } : {};
    const demo = await startDemo({ mode, env: { ...env, ...allowed } });
    stoppers.push(demo.stop);
    const serviceUrl = demo.baseUrl;
    const app = await startProcess(`the ${name} dev server`, example.args(port), {
      command: join(dir, 'node_modules', '.bin', example.bin),
      cwd: dir,
      env: {
        NUXT_TELEMETRY_DISABLED: '1',
        NEXT_TELEMETRY_DISABLED: '1',
        ...example.env({ endpoint: `${demo.emulatorUrl}/v1`, service: serviceUrl }),
      },
      // Ready once it renders the sign-in page: the first request compiles it.
      isReady: async () => (await fetch(`http://127.0.0.1:${port}`, { signal: AbortSignal.timeout(FIRST_PAGE_TIMEOUT_MS) })).ok,
      timeoutMs: FIRST_PAGE_TIMEOUT_MS,
    });
    stoppers.push(app.stop);
    return { demo, serviceUrl, appUrl, output: app.output, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}
