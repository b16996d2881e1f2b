// The JWT goes to client.setJWT() and nowhere else: not to the console, a status detail, an
// error, web storage, cookies, or the helper's own returned object.
import assert from 'node:assert/strict';
import { afterEach, beforeEach, test } from 'node:test';
import { inspect } from 'node:util';

import { Client } from 'appwrite';

import { realtimeAuth } from '../realtime-auth.js';
import {
  FakeWebSocket,
  installBrowserGlobals,
  problemResponse,
  statusLog,
  testEnv,
  tokenResponse,
  until,
} from '../test-support/fakes.js';

const SECRET = 'eyJhbGciOiJIUzI1NiJ9.SECRET-MARKER-7f3a.c2ln';
const METHODS = ['log', 'info', 'warn', 'error', 'debug', 'trace'];
let printed;
let saved;
let storageWrites;

function spyStorage() {
  return {
    getItem: () => null,
    setItem: (key, value) => storageWrites.push(`${key}=${value}`),
    removeItem: () => {},
  };
}

beforeEach(() => {
  installBrowserGlobals();
  printed = [];
  storageWrites = [];
  saved = Object.fromEntries(METHODS.map((m) => [m, console[m]]));
  for (const m of METHODS) console[m] = (...args) => printed.push(inspect(args, { depth: 10 }));
  globalThis.localStorage = spyStorage();
  globalThis.sessionStorage = spyStorage();
  globalThis.window.localStorage = spyStorage();
});

afterEach(() => {
  for (const m of METHODS) console[m] = saved[m];
  delete globalThis.localStorage;
  delete globalThis.sessionStorage;
  for (const ws of FakeWebSocket.instances) ws.serverClose(1000);
});

function assertNoSecret(where, value) {
  const text = typeof value === 'string' ? value : inspect(value, { depth: 10, showHidden: true });
  assert.ok(!text.includes('SECRET-MARKER'), `the JWT leaked into ${where}`);
}

test('a full life cycle keeps the JWT out of logs, statuses, errors and storage', async () => {
  const document = { cookieWrites: [] };
  const { env, clock } = testEnv({
    random: () => 0.5,
    script: [
      tokenResponse(SECRET, 120),
      problemResponse(429, 'rate_limited', { 'Retry-After': '1' }),
      new TypeError(`Failed to fetch ${SECRET}`),
      tokenResponse(SECRET, 120),
      tokenResponse(SECRET, 120),
    ],
  });
  Object.defineProperty(env.document, 'cookie', {
    set: (v) => document.cookieWrites.push(v),
    get: () => '',
  });
  const client = new Client().setEndpoint('https://appwrite.test/v1').setProject('proj');
  const log = statusLog();
  const auth = realtimeAuth(client, { env, onStatus: log.onStatus });
  await auth.ready();
  assert.equal(client.config.jwt, SECRET, 'the SDK got the token');

  const unsubscribe = client.subscribe('account', () => {});
  await until(() => FakeWebSocket.instances.length === 1);
  const first = FakeWebSocket.instances[0];
  first.serverOpen();
  first.serverClose(1006); // dropped: the reconnect's token is asked for, and refused with 429
  await clock.advance(1_000); // network error whose message quotes the token
  await clock.advance(2_000); // token again
  await until(() => FakeWebSocket.instances.length === 2); // the SDK's reconnect
  const guest = { type: 'connected', data: { channels: ['account'], user: null } };
  FakeWebSocket.instances[1].serverOpen();
  FakeWebSocket.instances[1].serverSend(guest);
  await clock.advance(0); // a fresh token proves the session; the SDK reconnects with it ...
  await until(() => FakeWebSocket.instances.length === 3);
  FakeWebSocket.instances[2].serverOpen();
  FakeWebSocket.instances[2].serverSend(guest); // ... as a guest again -> unsupported
  await clock.advance(0);
  unsubscribe();

  assert.deepEqual(log.statuses(), [
    'authenticated',
    'backing-off',
    'backing-off',
    'authenticated',
    'authenticated',
    'unsupported',
  ]);
  const error = await auth.ready().then(
    () => null,
    (err) => err,
  );
  assertNoSecret('status details', log.events);
  assertNoSecret('the helper object', auth);
  assertNoSecret('ready() rejection', error);
  assertNoSecret('console output', printed.join('\n'));
  assert.deepEqual(storageWrites, [], 'nothing written to web storage');
  assert.deepEqual(document.cookieWrites, [], 'no cookie written');
});

test('handing the socket over to the session cookie keeps the JWT out of the cookie status', async () => {
  const { env, clock } = testEnv({ script: [tokenResponse(SECRET, 120)] });
  const client = new Client().setEndpoint('https://appwrite.test/v1').setProject('proj');
  const log = statusLog();
  const auth = realtimeAuth(client, { env, onStatus: log.onStatus });
  await auth.ready();
  const unsubscribe = client.subscribe('account', () => {});
  await until(() => FakeWebSocket.instances.length === 1);
  const ws = FakeWebSocket.instances[0];
  assert.equal(ws.jwtParam(), SECRET);
  ws.serverOpen();
  ws.serverSend({
    type: 'error',
    data: { code: 403, message: 'JWT and cookie used in the same request. Use either `setJWT` or `setCookie`.' },
  });
  await clock.advance(0);
  unsubscribe();

  assert.deepEqual(log.statuses(), ['authenticated', 'cookie']);
  assert.deepEqual(log.events[1].detail, { reason: 'cookie-session' });
  assert.equal(client.config.jwt, '', 'the JWT is gone from the client too');
  assertNoSecret('status details', log.events);
  assertNoSecret('the helper object', auth);
  assertNoSecret('console output', printed.join('\n'));
  assert.deepEqual(storageWrites, [], 'nothing written to web storage');
});

test('errors on the way to signed-out carry codes only', async () => {
  const { env } = testEnv({
    script: [
      new Response(JSON.stringify({ code: 'session_invalid', detail: SECRET }), { status: 401 }),
    ],
  });
  const log = statusLog();
  const auth = realtimeAuth({ setJWT: () => {} }, { env, onStatus: log.onStatus });
  const error = await auth.ready().catch((err) => err);
  assert.equal(error.code, 'session_invalid');
  assertNoSecret('ready() rejection', error);
  assertNoSecret('ready() rejection message', error.message);
  assertNoSecret('status details', log.events);
  assertNoSecret('console output', printed.join('\n'));
});

test('the module source has no console or storage calls', async () => {
  const { readFile } = await import('node:fs/promises');
  const source = await readFile(new URL('../realtime-auth.js', import.meta.url), 'utf8');
  const code = source.replace(/\/\*[\s\S]*?\*\/|\/\/.*$/gm, '');
  for (const forbidden of ['console.', 'localStorage', 'sessionStorage', 'indexedDB', 'document.cookie', 'postMessage', 'BroadcastChannel']) {
    assert.ok(!code.includes(forbidden), `realtime-auth.js uses ${forbidden}`);
  }
});

test('the shared mode\'s modules use no console or storage; the worker gets an empty storage stub only', async () => {
  const { readFile } = await import('node:fs/promises');
  for (const file of ['realtime-hub.js', 'shared-realtime.js']) {
    const source = await readFile(new URL(`../${file}`, import.meta.url), 'utf8');
    const code = source.replace(/\/\*[\s\S]*?\*\/|\/\/.*$/gm, '');
    for (const forbidden of ['console.', 'sessionStorage', 'indexedDB', 'document.cookie', 'BroadcastChannel']) {
      assert.ok(!code.includes(forbidden), `${file} uses ${forbidden}`);
    }
    const storage = code.split('\n').filter((line) => line.includes('localStorage'));
    const stub = '  scope.localStorage ??= { getItem: () => null, setItem: () => {}, removeItem: () => {} };';
    assert.deepEqual(storage, file === 'realtime-hub.js' ? [stub] : [], `${file}: localStorage only as the worker's empty stub`);
  }
});
