import type { H3Event } from 'h3'
import { Account, Client } from 'node-appwrite'

// The emulator's key, used only when the endpoint is on this machine (`token-exchange demo`).
const EMULATOR_API_KEY = 'emulator-api-key-for-local-use-only'

const isLoopback = (url: string) => ['localhost', '127.0.0.1', '[::1]'].includes(new URL(url).hostname)

/**
 * Where Appwrite is, from runtimeConfig. Against any Appwrite but the local emulator a missing key
 * fails the request (the page and the terminal name the variable) instead of a sign-in that can
 * never work.
 */
export function appwriteConfig(event: H3Event) {
  const config = useRuntimeConfig(event)
  const { appwriteEndpoint: endpoint, appwriteProject: project } = config.public
  const apiKey = config.appwriteApiKey || (isLoopback(endpoint) ? EMULATOR_API_KEY : '')
  if (!apiKey) {
    const message =
      `NUXT_APPWRITE_API_KEY is not set, and NUXT_PUBLIC_APPWRITE_ENDPOINT (${endpoint}) is not the local ` +
      'emulator: set NUXT_APPWRITE_API_KEY to an API key of the project with the sessions.write scope.'
    console.error(message)
    // A message of its own, so production shows it too (h3 hides an unexpected error's).
    throw createError({ statusCode: 500, message })
  }
  return { endpoint, project, apiKey }
}

// The cookie the token service reads (its SESSION_COOKIE_NAME defaults to this name).
export const sessionCookieName = (event: H3Event) => `a_session_${appwriteConfig(event).project}`

function baseClient(event: H3Event) {
  const { endpoint, project } = appwriteConfig(event)
  return new Client().setEndpoint(endpoint).setProject(project)
}

/** With the API key: creates sessions (Appwrite returns their secret only to a key). */
export const adminAccount = (event: H3Event) => new Account(baseClient(event).setKey(appwriteConfig(event).apiKey))

/** As the signed-in user (the session secret from the cookie), or null without a cookie. */
export function sessionAccount(event: H3Event) {
  const secret = getCookie(event, sessionCookieName(event))
  return secret ? new Account(baseClient(event).setSession(secret)) : null
}
