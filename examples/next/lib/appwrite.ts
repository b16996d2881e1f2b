import 'server-only'
import { cookies } from 'next/headers'
import { Account, Client } from 'node-appwrite'

// Server only: the defaults are those of `token-exchange demo`'s emulator.
export const appwrite = {
  endpoint: process.env.APPWRITE_ENDPOINT ?? 'http://127.0.0.1:8081/v1',
  project: process.env.APPWRITE_PROJECT ?? 'demo',
  apiKey: process.env.APPWRITE_API_KEY ?? 'emulator-api-key-for-local-use-only',
}

// The cookie the token service reads (its SESSION_COOKIE_NAME defaults to this name).
export const sessionCookieName = `a_session_${appwrite.project}`

const baseClient = () => new Client().setEndpoint(appwrite.endpoint).setProject(appwrite.project)

/** With the API key: creates sessions (Appwrite returns their secret only to a key). */
export const adminAccount = () => new Account(baseClient().setKey(appwrite.apiKey))

/** As the signed-in user (the session secret from the cookie), or null without a cookie. */
export async function sessionAccount() {
  const secret = (await cookies()).get(sessionCookieName)?.value
  return secret ? new Account(baseClient().setSession(secret)) : null
}
