// Screenshots for the READMEs: the demo page and each example app, signed in and in an error
// state, in Debian's Chromium, saved as docs/screenshots/*.png. Not a test; run it by hand after
// changing what a page shows:
//
//   cd e2e && node screenshots.js            # or: node screenshots.js next   (some only)

import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { installed, startExample } from './examples.js';
import { REPO, signIn as signInToDemo, sleep, startBrowser, startDemo, waitFor } from './support.js';

const OUT = join(REPO, 'docs', 'screenshots');
const VIEWPORT = { width: 1000, height: 700 };
// Long enough for the demo's publisher (every 2 s) to put a few events on the page.
const EVENTS_WAIT_MS = 7_000;
const API_KEY_VARIABLE = { nuxt: 'NUXT_APPWRITE_API_KEY', next: 'APPWRITE_API_KEY', sveltekit: 'APPWRITE_API_KEY' };

async function withPage(shoot) {
  const browser = await startBrowser();
  try {
    const page = browser.context.pages()[0] ?? (await browser.context.newPage());
    await page.setViewportSize(VIEWPORT);
    await shoot(page);
  } finally {
    await browser.close();
  }
}

async function save(page, name) {
  const path = join(OUT, `${name}.png`);
  await page.screenshot({ path });
  process.stdout.write(`saved ${path}\n`);
}

const waitForAttribute = (page, selector, attribute, wanted) =>
  waitFor(`${selector} ${attribute}=${wanted}`, async () => (await page.locator(selector).getAttribute(attribute)) === wanted, { timeoutMs: 60_000 });

/** Run `start` with the app server's environment changed by `appEnv` (the dev server inherits ours). */
async function withAppEnv(appEnv, start) {
  const saved = Object.fromEntries(Object.keys(appEnv).map((key) => [key, process.env[key]]));
  Object.assign(process.env, appEnv);
  try {
    return await start();
  } finally {
    for (const [key, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[key];
      else process.env[key] = value;
    }
  }
}

async function demoShots() {
  const demo = await startDemo();
  try {
    await withPage(async (page) => {
      await signInToDemo(page, demo.baseUrl, 'via=jwt');
      await waitForAttribute(page, '#auth-status', 'data-status', 'authenticated');
      await sleep(EVENTS_WAIT_MS);
      await save(page, 'demo-signed-in');
    });
  } finally {
    await demo.stop();
  }
  // Self-hosted 1.9.6 ignores the JWT on the Realtime handshake: the page says so and points to the relay.
  const selfHosted = await startDemo({ mode: '1.9.6' });
  try {
    await withPage(async (page) => {
      await signInToDemo(page, selfHosted.baseUrl, 'via=jwt');
      await waitForAttribute(page, '#auth-status', 'data-status', 'unsupported');
      await save(page, 'demo-unsupported');
    });
  } finally {
    await selfHosted.stop();
  }
}

async function signInToExample(page, app, path = '/') {
  await page.goto(`${app.appUrl}${path}`, { timeout: 60_000 });
  await page.locator('#signin-button').click();
}

async function exampleShots(name) {
  const app = await startExample(name);
  try {
    await withPage(async (page) => {
      await signInToExample(page, app);
      await waitForAttribute(page, '#status', 'data-status', 'authenticated');
      await sleep(EVENTS_WAIT_MS);
      await save(page, `${name}-signed-in`);
    });
    if (name === 'sveltekit') {
      // Appwrite refuses a Realtime handshake from a host that is not one of the project's Web platforms.
      const removed = await fetch(`${app.demo.emulatorUrl}/_emulator/platforms/localhost`, { method: 'DELETE' });
      if (!removed.ok) throw new Error(`the emulator kept localhost: HTTP ${removed.status}`);
      await withPage(async (page) => {
        await signInToExample(page, app);
        await waitForAttribute(page, '#status', 'data-status', 'error');
        await save(page, `${name}-no-web-platform`);
      });
    }
  } finally {
    await app.stop();
  }
  if (name === 'next') {
    // Next's rewrites send the service its own Host: without ALLOWED_ORIGINS the token route refuses the page.
    const refused = await startExample(name, { allowOrigin: false });
    try {
      await withPage(async (page) => {
        await signInToExample(page, refused);
        await waitForAttribute(page, '#status', 'data-status', 'error');
        await save(page, `${name}-origin-not-allowed`);
      });
    } finally {
      await refused.stop();
    }
  }
  if (name === 'nuxt') {
    const wrongKey = await withAppEnv({ [API_KEY_VARIABLE[name]]: 'wrong-key' }, () => startExample(name));
    try {
      await withPage(async (page) => {
        await signInToExample(page, wrongKey);
        await page.locator('#signin-error').waitFor({ timeout: 60_000 });
        await save(page, `${name}-wrong-api-key`);
      });
    } finally {
      await wrongKey.stop();
    }
  }
}

const wanted = process.argv.slice(2);
const pick = (name) => wanted.length === 0 || wanted.includes(name);
await mkdir(OUT, { recursive: true });
if (pick('demo')) await demoShots();
for (const name of ['nuxt', 'next', 'sveltekit']) {
  if (!pick(name)) continue;
  if (!installed(name)) throw new Error(`npm ci has not run in examples/${name} (examples/install)`);
  await exampleShots(name);
}
