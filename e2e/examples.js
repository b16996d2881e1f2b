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
 * The demo (emulator with its demo user, and the service) plus examples/<name>'s dev server.
 * Resolves once the dev server has rendered its first page; returns { demo, appUrl, output(), stop() }.
 */
export async function startExample(name, { mode = 'cloud', env = {} } = {}) {
  const example = EXAMPLES[name];
  const demo = await startDemo({ mode, env });
  const port = await freePort();
  // The browser opens the app as localhost and Appwrite as 127.0.0.1: cookies ignore ports, so on
  // one host name the app's session cookie would reach Appwrite too (its status: 'cookie').
  const appUrl = `http://localhost:${port}`;
  const dir = join(REPO, 'examples', name);
  let app;
  try {
    app = await startProcess(`the ${name} dev server`, example.args(port), {
      command: join(dir, 'node_modules', '.bin', example.bin),
      cwd: dir,
      env: { NUXT_TELEMETRY_DISABLED: '1', NEXT_TELEMETRY_DISABLED: '1', ...example.env({ endpoint: `${demo.emulatorUrl}/v1`, service: demo.baseUrl }) },
      // Ready once it renders the sign-in page: the first request compiles it.
      isReady: async () => (await fetch(`http://127.0.0.1:${port}`, { signal: AbortSignal.timeout(FIRST_PAGE_TIMEOUT_MS) })).ok,
      timeoutMs: FIRST_PAGE_TIMEOUT_MS,
    });
  } catch (error) {
    await demo.stop();
    throw error;
  }
  return {
    demo,
    appUrl,
    output: app.output,
    async stop() {
      await app.stop();
      await demo.stop();
    },
  };
}
