import 'server-only'
import { cookies } from 'next/headers'
import { Account, Client } from 'node-appwrite'
import type { EnvNames } from './problems'

// The emulator's key, used only when APPWRITE_ENDPOINT is on this machine (`token-exchange demo`).
const EMULATOR_API_KEY = 'emulator-api-key-for-local-use-only'

export const envNames: EnvNames = { endpoint: 'APPWRITE_ENDPOINT', project: 'APPWRITE_PROJECT', apiKey: 'APPWRITE_API_KEY' }

const isLoopback = (url: string) => ['localhost', '127.0.0.1', '[::1]'].includes(new URL(url).hostname)

/**
 * Server only: where Appwrite is, read at each request. The defaults are those of `token-exchange
 * demo`'s emulator; against any other Appwrite a missing key fails the request (the page and the
 * terminal name the variable) instead of a sign-in that can never work.
 */
export function appwrite() {
  const endpoint = process.env.APPWRITE_ENDPOINT || 'http://127.0.0.1:8081/v1'
  const apiKey = process.env.APPWRITE_API_KEY || (isLoopback(endpoint) ? EMULATOR_API_KEY : '')
  if (!apiKey) {
    throw new Error(
      `APPWRITE_API_KEY is not set, and APPWRITE_ENDPOINT (${endpoint}) is not the local emulator: ` +
        'set APPWRITE_API_KEY to an API key of the project with the sessions.write scope.',
    )
  }
  return { endpoint, project: process.env.APPWRITE_PROJECT || 'demo', apiKey }
}

// The cookie the token service reads (its SESSION_COOKIE_NAME defaults to this name).
export const sessionCookieName = () => `a_session_${appwrite().project}`

function baseClient() {
  const { endpoint, project } = appwrite()
  return new Client().setEndpoint(endpoint).setProject(project)
}

/** With the API key: creates sessions (Appwrite returns their secret only to a key). */
export const adminAccount = () => new Account(baseClient().setKey(appwrite().apiKey))

/** As the signed-in user (the session secret from the cookie), or null without a cookie. */
export async function sessionAccount() {
  const secret = (await cookies()).get(sessionCookieName())?.value
  return secret ? new Account(baseClient().setSession(secret)) : null
}
