// An example copied out of the repository, as a developer starts a project from it: only the
// example's own files (what a clone has of it), in a folder with no repository around it, installed
// with the README's `npm ci`, run on its dev server against `token-exchange demo`, and used in
// Chromium: sign in, and an event arrives through the helper.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { EXAMPLES, startExample } from './examples.js';
import { REPO, connectedFrame, publishMarked, record, startBrowser, waitFor } from './support.js';

const run = promisify(execFile);
const NAME = 'next';
const INSTALL_TIMEOUT_MS = 600_000;

let scratch;
let app;

before(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'e2e-example-copy-'));
  app = join(scratch, 'myapp');
  // `cp -r examples/next myapp` from a fresh clone: the tracked files and the new ones not
  // ignored, without this checkout's node_modules or build output.
  const source = `examples/${NAME}`;
  await run('bash', ['-c', `mkdir -p "$1" && git ls-files -z -co --exclude-standard -- "$2" | tar --null --ignore-failed-read -T - -cf - | tar -xf - -C "$1" --strip-components=2`, '_', app, source], {
    cwd: REPO,
    maxBuffer: 1 << 24,
  });
  assert.ok(!existsSync(join(app, 'node_modules')), 'the copy starts without node_modules');
  const readme = readFileSync(join(app, 'README.md'), 'utf8');
  assert.match(readme, /^npm ci && npm run dev\b/m, "the README's app command");
  const manifest = JSON.parse(readFileSync(join(app, 'package.json'), 'utf8'));
  assert.match(manifest.scripts.dev, new RegExp(`^${EXAMPLES[NAME].bin} dev\\b`), 'npm run dev runs the dev server the test starts');
  const outside = Object.entries(manifest.dependencies).filter(([, spec]) => spec.startsWith('file:') && spec.includes('..'));
  assert.deepEqual(outside, [], 'no dependency reaches outside the folder');
  await run('npm', ['ci', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: app, timeout: INSTALL_TIMEOUT_MS, maxBuffer: 1 << 26 });
}, { timeout: INSTALL_TIMEOUT_MS + 60_000 });

after(async () => {
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

test(`examples/${NAME} copied out of the repository installs with npm ci and shows live events`, { timeout: 240_000 }, async (t) => {
  const example = await startExample(NAME, { dir: app });
  t.after(example.stop);
  const browser = await startBrowser();
  t.after(() => browser.close());
  const page = browser.context.pages()[0] ?? (await browser.context.newPage());
  const recorded = record(page);
  await page.goto(example.appUrl, { timeout: 60_000 });
  await page.locator('#signin-button').click();
  await page.locator('#user-id').waitFor({ timeout: 60_000 });
  const userId = (await page.locator('#user-id').textContent()).trim();
  await waitFor('a socket connected as the user', () => recorded.sockets.find((s) => connectedFrame(s)?.data?.user?.$id === userId), { timeoutMs: 30_000 });
  const { marker } = await publishMarked(example.demo, { userId });
  await waitFor(`the event ${marker} on the page`, async () => (await page.locator('#events').textContent()).includes(marker));
  const installedHelper = JSON.parse(readFileSync(join(app, 'node_modules', '@appwrite-token-exchange', 'realtime-auth', 'package.json'), 'utf8'));
  assert.equal(installedHelper.version, JSON.parse(readFileSync(join(REPO, 'clients', 'js', 'package.json'), 'utf8')).version);
});
