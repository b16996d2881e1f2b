// Shared with the page, which explains the code it is sent back with.
import { signInErrorCode } from '../../app/utils/problems'

export default defineEventHandler(async (event) => {
  const form = await readFormData(event)
  // Back to the route the form was on (only these two: never a URL from the request).
  const back = form.get('via') === 'relay' ? '/?via=relay' : '/'
  // The form shows the code; the terminal gets Appwrite's message too.
  const failed = (code: string, message = '') => {
    console.error(`sign-in failed (${code})${message && `: ${message}`}`)
    return sendRedirect(event, `${back}${back.includes('?') ? '&' : '?'}signin=${code}`, 303)
  }
  let session
  try {
    session = await adminAccount(event).createEmailPasswordSession({
      email: String(form.get('email') ?? ''),
      password: String(form.get('password') ?? ''),
    })
  } catch (error) {
    return failed(signInErrorCode(error), String(error instanceof Error ? error.message : error))
  }
  // Appwrite sends the secret only to a caller it takes for an API key: without it there is no session to keep.
  if (!session.secret) return failed('no_session_secret', 'Appwrite did not take NUXT_APPWRITE_API_KEY as an API key')
  // h3's setCookie, default encoding (encodeURIComponent): the service decodes it as h3 does.
  setCookie(event, sessionCookieName(event), session.secret, {
    httpOnly: true,
    secure: !import.meta.dev,
    sameSite: 'lax',
    path: '/',
    expires: new Date(session.expire),
  })
  return sendRedirect(event, back, 303)
})
