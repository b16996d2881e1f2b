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
