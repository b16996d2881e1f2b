import type { H3Event } from 'h3'
import { Account, Client } from 'node-appwrite'

// The cookie the token service reads (its SESSION_COOKIE_NAME defaults to this name).
export const sessionCookieName = (event: H3Event) => `a_session_${useRuntimeConfig(event).public.appwriteProject}`

function baseClient(event: H3Event) {
  const { public: config } = useRuntimeConfig(event)
  return new Client().setEndpoint(config.appwriteEndpoint).setProject(config.appwriteProject)
}

/** With the API key: creates sessions (Appwrite returns their secret only to a key). */
export const adminAccount = (event: H3Event) =>
  new Account(baseClient(event).setKey(useRuntimeConfig(event).appwriteApiKey))

/** As the signed-in user (the session secret from the cookie), or null without a cookie. */
export function sessionAccount(event: H3Event) {
  const secret = getCookie(event, sessionCookieName(event))
  return secret ? new Account(baseClient(event).setSession(secret)) : null
}
