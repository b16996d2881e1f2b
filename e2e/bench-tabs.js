// What many open tabs of one browser cost: N tabs signed in as one user, kept open for a while,
// and across them the token requests by status, the Realtime sockets opened and refused, and
// whether every tab still gets an event at the end. Not a test; run it by hand, e.g. before and
// after a change to the helper (one measurement at a time: the numbers depend on the CPU):
//
//   cd e2e && node bench-tabs.js --tabs 1,8,30 --seconds 600
//   node bench-tabs.js --target next --route relay --tabs 8       # examples/next (examples/install first)
//   node bench-tabs.js --python ../../old/.venv/bin/python --cwd ../../old   # another checkout
//
// Options: --tabs N,N,... (default 1,8) --seconds S (600) --target demo|next (demo)
// --route jwt|relay (jwt) --python PATH (another checkout's venv Python, installed editable there,
// so its demo serves that checkout's clients/js; default ../.venv) --cwd DIR (that checkout: the
// demo runs there; --target next runs DIR/examples/next, whose helper is its own node_modules')
// --env NAME=VALUE (a service setting, repeatable; without it the service keeps its defaults).
// Each tab count gets a fresh service and browser. Counted from sign-in to the end of the hold.

import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

const options = parseOptions(process.argv.slice(2));
// support.js picks its Python when it loads: point it at the other checkout's first.
if (options.python) process.env.PYTHON = options.python;
const { REPO, connectedFrame, pageState, publishMarked, record, signIn, sleep, startBrowser, startDemo, waitFor, waitForEvent } =
  await import('./support.js');
const { startExample } = await import('./examples.js');

// Interrupted, stop what runs first: an exit alone kills only our own children (support.js's
// exit handler, Playwright's for Chromium), and would leave the Next dev server's worker behind.
// On SIGINT Playwright exits as soon as Chromium is closed, so the servers are told first.
let stopRunning = async () => {};
for (const signal of ['SIGINT', 'SIGTERM']) process.once(signal, () => stopRunning().finally(() => process.exit(130)));

const TOKEN_PATH = '/v1/realtime/token';
const REALTIME_PATH = '/v1/realtime';
const PAGE_TIMEOUT_MS = 60_000; // a dev server's first compile of a page on 2 shared cores
const FINAL_EVENT_TIMEOUT_MS = 15_000;

function parseOptions(argv) {
  const parsed = { tabs: [1, 8], seconds: 600, target: 'demo', route: 'jwt', python: undefined, cwd: undefined, env: {} };
  for (let i = 0; i < argv.length; i += 2) {
    const [name, value] = [argv[i], argv[i + 1]];
    if (value === undefined) throw new Error(`${name} needs a value`);
    if (name === '--tabs') parsed.tabs = value.split(',').map(positiveInteger);
    else if (name === '--seconds') parsed.seconds = positiveInteger(value);
    else if (name === '--target' && ['demo', 'next'].includes(value)) parsed.target = value;
    else if (name === '--route' && ['jwt', 'relay'].includes(value)) parsed.route = value;
    else if (name === '--python') parsed.python = resolve(value);
    else if (name === '--cwd') parsed.cwd = resolve(value);
    else if (name === '--env' && value.includes('=')) parsed.env[value.split('=')[0]] = value.slice(value.indexOf('=') + 1);
    else throw new Error(`unknown option or value: ${name} ${value} (see the top of bench-tabs.js)`);
  }
  return parsed;
}

function positiveInteger(text) {
  const number = Number(text);
  if (!Number.isInteger(number) || number < 1) throw new Error(`not a positive integer: ${text}`);
  return number;
}

const shortHash = (text) => createHash('sha256').update(text).digest('hex').slice(0, 12);

/** Per target: how to start it, sign in, and read a tab's status, user and events. */
const TARGETS = {
  demo: {
    async start() {
      const demo = await startDemo({ env: options.env, cwd: options.cwd });
      const helper = await (await fetch(`${demo.baseUrl}/demo/realtime-auth.js`)).text();
      return { demo, url: `${demo.baseUrl}/?via=${options.route}`, helperHash: shortHash(helper), stop: demo.stop };
    },
    signIn: (page, site) => signIn(page, site.demo.baseUrl, `via=${options.route}`),
    userId: async (page) => (await pageState(page)).config.user.id,
    statusSelector: '#auth-status',
    // The helper's statuses over the whole run (the relay route has none: no helper there).
    statusHistory: async (page) => (await pageState(page)).statuses.map((entry) => entry.status),
    gotEvent: (page, marker) => waitForEvent(page, marker, FINAL_EVENT_TIMEOUT_MS),
  },
  next: {
    async start() {
      const dir = join(options.cwd ?? REPO, 'examples', 'next');
      const helperFile = join(dir, 'node_modules', '@appwrite-token-exchange', 'realtime-auth', 'realtime-auth.js');
      if (!existsSync(helperFile)) throw new Error(`npm ci has not run in ${dir} (examples/install)`);
      const app = await startExample('next', { env: options.env, dir });
      const url = `${app.appUrl}/${options.route === 'relay' ? '?via=relay' : ''}`;
      return { demo: app.demo, url, helperHash: shortHash(readFileSync(helperFile)), stop: app.stop };
    },
    async signIn(page, site) {
      await page.goto(site.url, { timeout: PAGE_TIMEOUT_MS });
      await page.locator('#signin-button').click();
      await page.locator('#user-id').waitFor({ timeout: PAGE_TIMEOUT_MS });
    },
    userId: async (page) => (await page.locator('#user-id').textContent()).trim(),
    statusSelector: '#status',
    statusHistory: async () => null, // the app keeps none
    gotEvent: (page, marker) =>
      waitFor(`the event ${marker}`, async () => (await page.locator('#events').innerText()).includes(marker), {
        timeoutMs: FINAL_EVENT_TIMEOUT_MS,
      }),
  },
};

/** "a×3, b×1" for a list of values. */
function tally(values) {
  const counts = new Map();
  for (const value of values) counts.set(value, (counts.get(value) ?? 0) + 1);
  return [...counts].map(([value, count]) => `${value}×${count}`).join(', ') || '-';
}

/** What the tabs' recorders saw: token requests by status, Realtime sockets and their error frames. */
function countTraffic(recorders) {
  const tokens = recorders.flatMap((seen) => seen.responses.filter((r) => r.method === 'POST' && new URL(r.url).pathname === TOKEN_PATH));
  // Only the SDK's sockets (a dev server has its own, for hot reload).
  const socketsOf = (seen) => seen.sockets.filter((s) => new URL(s.url).pathname === REALTIME_PATH);
  const asUser = (socket) => Boolean(connectedFrame(socket)?.data?.user);
  const sockets = recorders.flatMap(socketsOf);
  const errorFrames = sockets.flatMap((s) => s.received.filter((frame) => frame.type === 'error'));
  return {
    // A tab still waiting for its first token has no socket at all.
    tabsConnected: recorders.filter((seen) => socketsOf(seen).some(asUser)).length,
    ok: tokens.filter((r) => r.status === 200).length,
    limited: tokens.filter((r) => r.status === 429).length,
    other: tally(tokens.filter((r) => r.status !== 200 && r.status !== 429).map((r) => r.status)),
    socketsOpened: sockets.length,
    socketsAsUser: sockets.filter(asUser).length,
    errorFrames: tally(errorFrames.map((frame) => frame.data?.code)),
  };
}

/** Each tab's status now, its visibility, and the statuses its helper went through. */
async function readTabs(target, pages) {
  const tabs = await Promise.all(
    pages.map(async (page) => ({
      status: (await page.locator(target.statusSelector).getAttribute('data-status', { timeout: 5_000 }).catch(() => null)) || 'none',
      visibility: await page.evaluate(() => document.visibilityState).catch(() => '?'),
      history: await target.statusHistory(page).catch(() => null),
    })),
  );
  // How many tabs ever had a status during the run ('n/a' where the page keeps no history).
  const tabsThatWere = (status) =>
    tabs.some((tab) => tab.history === null) ? 'n/a' : `${tabs.filter((tab) => tab.history.includes(status)).length} tab(s)`;
  return {
    finalStatuses: tally(tabs.map((tab) => tab.status)),
    visibility: tally(tabs.map((tab) => tab.visibility)),
    backedOff: tabsThatWere('backing-off'),
    signedOut: tabsThatWere('signed-out'),
  };
}

/** One event to the user's `account` channel; how many tabs showed it. */
async function tabsWithFinalEvent(target, site, pages) {
  const { marker, delivered } = await publishMarked(site.demo, { userId: await target.userId(pages[0]) });
  const arrived = await Promise.allSettled(pages.map((page) => target.gotEvent(page, marker)));
  return { received: arrived.filter((outcome) => outcome.status === 'fulfilled').length, delivered };
}

/** A fresh service and browser; sign in once, open `tabs` tabs, keep them open `seconds`. */
async function measure(tabs) {
  const target = TARGETS[options.target];
  const site = await target.start();
  let browser;
  stopRunning = () => Promise.all([site.stop(), browser?.close()]);
  try {
    browser = await startBrowser();
    const startedAt = Date.now();
    const first = browser.context.pages()[0] ?? (await browser.context.newPage());
    const pages = [first];
    const recorders = [record(first)];
    await target.signIn(first, site);
    // The other tabs share the context's session cookie: they open on the signed-in page.
    while (pages.length < tabs) {
      const page = await browser.context.newPage();
      recorders.push(record(page));
      pages.push(page);
      await page.goto(site.url, { timeout: PAGE_TIMEOUT_MS });
    }
    process.stderr.write(`${tabs} tab(s) open after ${Math.round((Date.now() - startedAt) / 1000)} s; holding until ${options.seconds} s\n`);
    await sleep(Math.max(0, startedAt + options.seconds * 1000 - Date.now()));
    const seconds = (Date.now() - startedAt) / 1000;
    const traffic = countTraffic(recorders);
    const tabState = await readTabs(target, pages);
    const finalEvent = await tabsWithFinalEvent(target, site, pages);
    return { tabs, seconds, helperHash: site.helperHash, ...traffic, ...tabState, ...finalEvent };
  } finally {
    // The browser first, so its sockets are gone before the service drains.
    await browser?.close();
    await site.stop();
  }
}

const COLUMNS = [
  ['tabs', (row) => row.tabs],
  ['seconds', (row) => Math.round(row.seconds)],
  ['token 200', (row) => row.ok],
  ['token 429', (row) => row.limited],
  ['token other', (row) => row.other],
  ['sockets opened', (row) => row.socketsOpened],
  ['sockets as user', (row) => row.socketsAsUser],
  ['tabs ever connected', (row) => `${row.tabsConnected}/${row.tabs}`],
  ['error frames', (row) => row.errorFrames],
  ['mints/tab/hour', (row) => (row.ok / row.tabs / (row.seconds / 3600)).toFixed(1)],
  ['final event', (row) => `${row.received}/${row.tabs} (delivered ${row.delivered})`],
  ['final status', (row) => row.finalStatuses],
  ['ever backing-off', (row) => row.backedOff],
  ['ever signed-out', (row) => row.signedOut],
  ['visibility', (row) => row.visibility],
  ['helper sha256', (row) => row.helperHash],
];
const printRow = (cells) => process.stdout.write(`| ${cells.join(' | ')} |\n`);

const settings = Object.entries(options.env).map(([name, value]) => `${name}=${value}`).join(' ') || 'none (the service\'s defaults)';
process.stdout.write(
  `target ${options.target}, route ${options.route}, ${options.seconds} s per run, tabs ${options.tabs.join(',')}\n` +
    `python ${process.env.PYTHON ?? join(REPO, '.venv', 'bin', 'python')}, checkout ${options.cwd ?? REPO}\n` +
    `service settings set: ${settings}\n\n`,
);
printRow(COLUMNS.map(([title]) => title));
printRow(COLUMNS.map(() => '---'));
for (const tabs of options.tabs) {
  const row = await measure(tabs);
  printRow(COLUMNS.map(([, cell]) => cell(row)));
}
