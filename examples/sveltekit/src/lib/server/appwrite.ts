// Server only ($lib/server): the API key never reaches the browser.
import { env } from '$env/dynamic/private';
import type { Cookies } from '@sveltejs/kit';
import { Account, Client } from 'node-appwrite';

// The defaults are those of `token-exchange demo`'s emulator.
export const appwrite = {
  endpoint: env.APPWRITE_ENDPOINT ?? 'http://127.0.0.1:8081/v1',
  project: env.APPWRITE_PROJECT ?? 'demo',
  apiKey: env.APPWRITE_API_KEY ?? 'emulator-api-key-for-local-use-only',
};

// The cookie the token service reads (its SESSION_COOKIE_NAME defaults to this name).
export const sessionCookieName = `a_session_${appwrite.project}`;

const baseClient = () => new Client().setEndpoint(appwrite.endpoint).setProject(appwrite.project);

/** With the API key: creates sessions (Appwrite returns their secret only to a key). */
export const adminAccount = () => new Account(baseClient().setKey(appwrite.apiKey));

/** As the signed-in user (the session secret from the cookie), or null without a cookie. */
export function sessionAccount(cookies: Cookies) {
  const secret = cookies.get(sessionCookieName);
  return secret ? new Account(baseClient().setSession(secret)) : null;
}
