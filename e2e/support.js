// Shared pieces of the end-to-end tests: the demo in a child process on free loopback ports,
// Debian's Chromium driven by playwright-core (no browser download), bounded waits, and
// recorders for what the page receives.

import { spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const PYTHON = process.env.PYTHON || join(REPO, '.venv', 'bin', 'python');
// Debian's Chromium package (scripts/test installs it): `chromium` on PATH, or CHROMIUM.
const CHROMIUM = process.env.CHROMIUM || onPath('chromium');
// Without the background-networking flags Chromium phones home at start, and this machine's
// closed network refuses it; none of it is needed for a local page.
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const START_TIMEOUT_MS = 20_000;
const STOP_TIMEOUT_MS = 5_000;

function onPath(name) {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not in this directory
    }
  }
  throw new Error(`${name} is not installed (apt-get install ${name}), and CHROMIUM is not set`);
}

/** Resolve after `ms`. */
export const sleep = (ms) => new Promise((done) => setTimeout(done, ms));

/** Poll `check` (sync or async) until it returns something truthy; fail after `timeoutMs`. */
export async function waitFor(what, check, { timeoutMs = 10_000, intervalMs = 50 } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const value = await check();
      if (value) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${last.message})` : ''}`);
    }
    await sleep(intervalMs);
  }
}

export async function freePort() {
  const server = createServer();
  await new Promise((done, fail) => server.once('error', fail).listen(0, '127.0.0.1', done));
  const { port } = server.address();
  await new Promise((done) => server.close(done));
  return port;
}

const children = new Set();
process.once('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});

/**
 * A child process of ours (Python from ../.venv unless `command`), its output kept; resolves once `isReady(output)`
 * holds (polled, may be async). Returns { child, output(), stop() }; every child is killed at exit.
 */
export async function startProcess(name, args, { env = {}, isReady, timeoutMs = START_TIMEOUT_MS, command = PYTHON, cwd = REPO } = {}) {
  const child = spawn(command, args, { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let output = '';
  child.stdout.on('data', (chunk) => (output += chunk));
  child.stderr.on('data', (chunk) => (output += chunk));
  const exited = new Promise((done) => child.once('exit', (code, signal) => done({ code, signal })));
  exited.then(() => children.delete(child));
  const handle = {
    child,
    output: () => output,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const outcome = await Promise.race([exited, sleep(STOP_TIMEOUT_MS).then(() => null)]);
      if (outcome === null) {
        child.kill('SIGKILL');
        await exited;
      }
    },
  };
  try {
    await Promise.race([
      waitFor(`${name} to be ready`, () => isReady(output), { timeoutMs }),
      exited.then(({ code, signal }) => {
        throw new Error(`${name} exited early (${code ?? signal}):\n${output}`);
      }),
    ]);
  } catch (error) {
    await handle.stop();
    throw error;
  }
  return handle;
}

/** The emulator's control API at `emulatorUrl`: GET without a body, POST with one. */
export function controlApi(emulatorUrl) {
  return async function control(path, body) {
    const response = await fetch(`${emulatorUrl}/_emulator${path}`, {
      method: body === undefined ? 'GET' : 'POST',
      headers: body === undefined ? {} : { 'Content-Type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(5_000),
    });
    if (!response.ok) throw new Error(`control ${path}: HTTP ${response.status}`);
    return response.status === 204 ? null : response.json();
  };
}

/**
 * `python -m appwrite_token_exchange demo` on free ports; resolves once it printed "Press Ctrl+C".
 * `siteOnly` runs the demo app and the emulator without the service (`--site-only`). `command`
 * (an argv prefix, e.g. an installed `token-exchange`) and `cwd` run another installation.
 * Returns { baseUrl, emulatorUrl, port, emulatorPort, control(path, body?), output(), stop() }.
 */
export async function startDemo({ mode = 'cloud', env = {}, siteOnly = false, command = [PYTHON, '-m', 'appwrite_token_exchange'], cwd = REPO } = {}) {
  const [port, emulatorPort] = [await freePort(), await freePort()];
  const args = [...command.slice(1), 'demo', '--port', String(port), '--emulator-port', String(emulatorPort), '--mode', mode];
  const demoProcess = await startProcess('the demo', siteOnly ? [...args, '--site-only'] : args, {
    env: { LOG_LEVEL: 'warning', DRAIN_TIMEOUT_SECONDS: '1', ...env },
    isReady: (output) => output.includes('Press Ctrl+C'),
    command: command[0],
    cwd,
  });
  const emulatorUrl = `http://127.0.0.1:${emulatorPort}`;
  return {
    baseUrl: `http://127.0.0.1:${port}`,
    emulatorUrl,
    port,
    emulatorPort,
    output: demoProcess.output,
    control: controlApi(emulatorUrl),
    stop: demoProcess.stop,
  };
}

/** Chromium with a fresh profile; `close()` removes both. `args` are extra command-line flags. */
export async function startBrowser({ args = [] } = {}) {
  const profile = await mkdtemp(join(tmpdir(), 'e2e-chromium-'));
  let context;
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: [...CHROMIUM_ARGS, ...args],
      timeout: 30_000,
    });
  } catch (error) {
    await rm(profile, { recursive: true, force: true });
    throw error;
  }
  context.setDefaultTimeout(10_000);
  return {
    context,
    async close() {
      await Promise.race([context.close().catch(() => {}), sleep(STOP_TIMEOUT_MS)]);
      await rm(profile, { recursive: true, force: true });
    },
  };
}

/**
 * A demo process and a browser for one test, both stopped by `t.after` whatever happens
 * (the browser first, so its sockets are gone before the demo drains).
 */
export async function setUp(t, options = {}) {
  const demo = await startDemo(options);
  let browser;
  try {
    browser = await startBrowser();
  } catch (error) {
    await demo.stop();
    throw error;
  }
  t.after(async () => {
    await browser.close();
    await demo.stop();
    // Audit warnings (denied tokens) are expected; a failure or traceback in the demo is not.
    if (process.env.E2E_DEBUG || /Traceback|\[error|\berror\b.*exception/i.test(demo.output())) {
      for (const line of demo.output().trim().split('\n')) t.diagnostic(`demo: ${line}`);
    }
  });
  const page = browser.context.pages()[0] ?? (await browser.context.newPage());
  const pageErrors = [];
  page.on('pageerror', (error) => pageErrors.push(error.message));
  return { demo, browser, page, pageErrors, record: record(page) };
}

/**
 * What the page receives: every WebSocket (URL, frames both ways, close) and every response
 * (URL, status, body text), recorded from the first request on.
 */
export function record(page) {
  const sockets = [];
  const responses = [];
  page.on('websocket', (ws) => {
    const entry = { url: ws.url(), received: [], sent: [], closed: false, closedAt: undefined, openedAt: Date.now() };
    sockets.push(entry);
    ws.on('framereceived', (frame) => entry.received.push(parseFrame(frame.payload)));
    ws.on('framesent', (frame) => entry.sent.push(parseFrame(frame.payload)));
    ws.on('close', () => {
      entry.closed = true;
      entry.closedAt = Date.now();
    });
  });
  page.on('response', (response) => {
    const entry = { url: response.url(), method: response.request().method(), status: response.status(), at: Date.now(), body: undefined };
    responses.push(entry);
    // Every header line as received (repeats kept: a browser refuses some of them).
    entry.headersRead = response
      .headersArray()
      .then((lines) => (entry.headerLines = lines))
      .catch(() => (entry.headerLines = []));
    // Redirects have no body to read; everything else is kept as text.
    entry.bodyRead = response
      .text()
      .then((text) => (entry.body = text))
      .catch(() => (entry.body = ''));
  });
  return {
    sockets,
    responses,
    /** Responses of POST /v1/realtime/token, in order. */
    tokenResponses: () => responses.filter((r) => r.method === 'POST' && new URL(r.url).pathname === '/v1/realtime/token'),
    /** Every response body, once all have been read. */
    async bodies() {
      await Promise.all(responses.map((r) => r.bodyRead));
      return responses.map((r) => ({ url: r.url, body: r.body }));
    },
  };
}

function parseFrame(payload) {
  const text = typeof payload === 'string' ? payload : payload.toString('utf8');
  try {
    return JSON.parse(text);
  } catch {
    return { raw: text };
  }
}

/** The `connected` frame of a recorded socket, once it arrived. */
export const connectedFrame = (socket) => socket.received.find((frame) => frame.type === 'connected');

/** Whether Appwrite (or the relay) acknowledged a subscribe on this socket. */
export const subscribed = (socket) =>
  socket.received.some((frame) => frame.type === 'response' && frame.data?.to === 'subscribe' && frame.data?.success);

/** The `jwt` query parameter of a socket URL ('' when there is none). */
export const jwtOf = (url) => new URL(url).searchParams.get('jwt') ?? '';

/** Open the demo page and sign in through the server-side form; resolves on the signed-in page. */
export async function signIn(page, baseUrl, query = '') {
  await page.goto(`${baseUrl}/${query ? `?${query}` : ''}`);
  await page.locator('#signin-button').click();
  // Only the page served after a successful sign-in shows the session section.
  await page.locator('#session').waitFor({ state: 'visible' });
}

/** window.demo, the page's own record of statuses, events and sockets. */
export const pageState = (page) => page.evaluate(() => JSON.parse(JSON.stringify(window.demo)));

/** Publish one event with a unique marker through the emulator; resolves with the marker. */
export async function publishMarked(demo, target) {
  const marker = `m-${Math.random().toString(36).slice(2)}`;
  const body = target.userId
    ? { userId: target.userId, events: ['users.*.update.prefs'], payload: { marker } }
    : { channels: target.channels, events: ['databases.*.create'], payload: { marker } };
  const { delivered } = await demo.control('/realtime/publish', body);
  return { marker, delivered };
}

/** Wait until the page's subscription callback got the event carrying `marker`. */
export async function waitForEvent(page, marker, timeoutMs = 5_000) {
  return waitFor(
    `the event ${marker} on the page`,
    async () => (await pageState(page)).events.find((event) => event.payload?.marker === marker),
    { timeoutMs },
  );
}
