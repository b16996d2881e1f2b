// Type-checked by `npm run typecheck` (tsc --noEmit), never run: the README's usage, with both
// of the SDK's Realtime APIs, must compile against realtime-auth.d.ts and appwrite's own types.
import { Client, Realtime } from 'appwrite';
import {
  DEFAULT_TOKEN_URL,
  RealtimeAuthError,
  realtimeAuth,
  type RealtimeAuth,
  type RealtimeAuthStatus,
} from '../realtime-auth.js';
import { sharedRealtime, type SharedRealtime } from '../shared-realtime.js';
import { createRealtimeHub, serveSharedRealtime } from '../realtime-hub.js';

const client = new Client().setEndpoint('https://appwrite.example/v1').setProject('demo');
const realtime = new Realtime(client);

const auth: RealtimeAuth = realtimeAuth(client, {
  tokenUrl: DEFAULT_TOKEN_URL,
  realtime,
  onStatus: (status, detail) => {
    // Narrowing on the status narrows the detail.
    if (status === 'backing-off') {
      const wait: number = detail.retryInMs;
      void wait;
    } else if (status === 'unsupported') {
      const reason: 'server' | 'sdk' = detail.reason;
      void reason;
    } else if (status === 'cookie') {
      // Realtime runs on the Appwrite session cookie; nothing left to do for this socket.
      const reason: 'cookie-session' = detail.reason;
      void reason;
    } else if (status === 'authenticated') {
      const seconds: number = detail.expiresIn;
      void seconds;
    } else {
      const code: string = detail.code;
      void code;
    }
  },
});

async function main(): Promise<void> {
  try {
    await auth.ready();
  } catch (err) {
    if (err instanceof RealtimeAuthError && err.status === 'signed-out') return;
    throw err;
  }
  const legacy: () => void = client.subscribe('account', (event) => void event.events);
  const subscription = await realtime.subscribe(['account'], (event) => void event.payload);
  await auth.refresh();
  const now: RealtimeAuthStatus | 'pending' | 'stopped' = auth.status;
  void now;
  legacy();
  await subscription.close();
  auth.stop();
}
void main;

// @ts-expect-error the client must be able to take a JWT
realtimeAuth({});

// The shared mode: the page's side, and the worker module's one call.
const live: SharedRealtime = sharedRealtime({
  endpoint: 'https://appwrite.example/v1',
  project: 'demo',
  worker: () => new SharedWorker(new URL('./realtime-worker.js', import.meta.url), { type: 'module', name: 'appwrite-realtime' }),
  sdk: { Client, Realtime },
  onStatus: (status) => void status,
  onSocket: (socket) => {
    if (socket.state === 'connected') void socket.user?.id;
  },
});
async function shared(): Promise<void> {
  const sub = await live.subscribe(['account'], (event) => void event);
  sub.close();
  const mode: 'shared' | 'in-page' = live.mode;
  void mode;
  live.close();
}
void shared;
void createRealtimeHub({ Client, Realtime }).tabCount;
void serveSharedRealtime;
