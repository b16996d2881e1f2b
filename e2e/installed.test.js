// The README's first command, exactly as written, the way a newcomer runs it: a copy of the
// repository as a fresh clone has it (no node_modules, no .venv), the README's `pip install .`
// (non-editable: the package lands in site-packages, far from clients/js), then its
// `token-exchange demo`, and the printed page in Chromium on both routes.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, sep } from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { connectedFrame, pageState, REPO, setUp, signIn, waitFor, waitForEvent, publishMarked } from './support.js';

const run = promisify(execFile);
const INSTALL_TIMEOUT_MS = 600_000;

/** The README's "Try it" command, split at `&&`: the install steps, and the command that serves. */
function readmeTryIt(readme) {
  const section = readme.split('\n## Try it')[1] ?? '';
  const block = section.match(/```sh\n([^\n]+)\n```/);
  assert.ok(block, 'the README has a one-line sh block under "## Try it"');
  const steps = block[1].split('&&').map((step) => step.trim());
  return { install: steps.slice(0, -1).join(' && '), serve: steps.at(-1).split(/\s+/) };
}

let copy;
let tryIt;

before(async () => {
  tryIt = readmeTryIt(readFileSync(join(REPO, 'README.md'), 'utf8'));
  assert.deepEqual(tryIt.serve.slice(1), ['demo'], 'the last step serves the demo');
  copy = await mkdtemp(join(tmpdir(), 'e2e-fresh-clone-'));
  // What a clone holds: the tracked files and the new ones not ignored (this checkout's
  // node_modules, .venv and build output stay behind), as they are on disk now.
  await run('bash', ['-c', 'git ls-files -z -co --exclude-standard | tar --null --ignore-failed-read -T - -cf - | tar -xf - -C "$1"', '_', copy], {
    cwd: REPO,
    maxBuffer: 1 << 24,
  });
  assert.ok(!existsSync(join(copy, 'clients', 'js', 'node_modules')), 'the copy has no node_modules, as a clone has none');
  await run('bash', ['-c', tryIt.install], { cwd: copy, timeout: INSTALL_TIMEOUT_MS, maxBuffer: 1 << 26 });
}, { timeout: INSTALL_TIMEOUT_MS + 60_000 });

after(async () => {
  if (copy) await rm(copy, { recursive: true, force: true });
});

/** The installed demo, started as the README says (plus free ports), from the copy's folder. */
const installedDemo = (mode) => ({ mode, command: [join(copy, tryIt.serve[0])], cwd: copy });

test('the install is not editable: the package and its page assets live in the venv', async () => {
  const python = join(copy, '.venv', 'bin', 'python');
  const { stdout } = await run(python, ['-c', 'import appwrite_token_exchange.demo.site as s; print(s.__file__); print(s.PACKAGED_VENDOR)'], { cwd: copy });
  const [module, vendor] = stdout.trim().split('\n');
  assert.ok(module.startsWith(join(copy, '.venv') + sep), `imported from the venv, not the copy's source: ${module}`);
  const helperModules = ['realtime-auth.js', 'realtime-hub.js', 'shared-realtime.js'];
  for (const file of ['appwrite/dist/esm/sdk.js', 'appwrite/LICENSE', 'bignumber.js/LICENCE.md', 'json-bigint/LICENSE', ...helperModules]) {
    assert.ok(existsSync(join(vendor, file)), `the wheel carries ${file}`);
  }
  const pinned = JSON.parse(readFileSync(join(REPO, 'clients', 'js', 'package-lock.json'), 'utf8')).packages['node_modules/appwrite'].version;
  assert.equal(JSON.parse(readFileSync(join(vendor, 'appwrite', 'package.json'), 'utf8')).version, pinned, 'the SDK clients/js locks');
  for (const file of helperModules) {
    assert.equal(readFileSync(join(vendor, file), 'utf8'), readFileSync(join(REPO, 'clients', 'js', file), 'utf8'), file);
  }
});

test('token route: the page from the installed demo signs in and shows live events', async (t) => {
  const { demo, page, record, pageErrors } = await setUp(t, installedDemo('cloud'));
  await signIn(page, demo.baseUrl);
  assert.equal(await page.locator('#problem').isVisible(), false, 'no "files are missing" problem on the page');
  const { config } = await pageState(page);
  assert.equal(config.sdk.problem, null);
  await waitFor('a socket connected as the demo user', () =>
    record.sockets.find((s) => connectedFrame(s)?.data?.user?.$id === config.user.id),
  );
  await waitForEvent(page, (await publishMarked(demo, { userId: config.user.id })).marker);
  await waitFor('an event from the demo publisher', async () =>
    (await pageState(page)).events.some((e) => e.payload?.source === 'timer'),
  );
  assert.equal(await page.locator('#auth-status').getAttribute('data-status'), 'authenticated');
  assert.ok(record.tokenResponses().every((r) => r.status === 200));
  assert.deepEqual(pageErrors, []);
});

test('shared mode: two tabs of the installed demo share one socket through its SharedWorker', async (t) => {
  const { demo, browser, page, pageErrors } = await setUp(t, installedDemo('cloud'));
  await signIn(page, demo.baseUrl, 'shared=1');
  const second = await browser.context.newPage();
  await second.goto(`${demo.baseUrl}/?shared=1`);
  const { config } = await pageState(page);
  for (const tab of [page, second]) {
    await waitFor('the tab to subscribe', async () => (await pageState(tab)).subscribed);
    assert.equal((await pageState(tab)).live.mode, 'shared', 'the worker loaded from the installed package');
  }
  const { marker } = await publishMarked(demo, { userId: config.user.id });
  await Promise.all([page, second].map((tab) => waitForEvent(tab, marker)));
  const stats = await demo.control('/stats');
  assert.deepEqual([stats.jwtsIssued, stats.realtime.connects], [1, 1]);
  assert.deepEqual(pageErrors, []);
});

test('relay: the same installation relays the socket on self-hosted 1.9 and events arrive', async (t) => {
  const { demo, page, record, pageErrors } = await setUp(t, installedDemo('1.9'));
  await signIn(page, demo.baseUrl, 'via=relay');
  const { config } = await pageState(page);
  assert.equal(config.sdk.problem, null);
  const socket = await waitFor('a relayed socket connected as the demo user', () =>
    record.sockets.find((s) => connectedFrame(s)?.data?.user?.$id === config.user.id),
  );
  assert.equal(new URL(socket.url).host, new URL(demo.baseUrl).host, 'the socket goes to the service');
  await waitForEvent(page, (await publishMarked(demo, { channels: [config.publicChannel] })).marker);
  assert.equal(record.tokenResponses().length, 0);
  assert.deepEqual(pageErrors, []);
});
