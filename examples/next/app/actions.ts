'use server'

import { cookies } from 'next/headers'
import { redirect } from 'next/navigation'
import { adminAccount, sessionCookieName } from '@/lib/appwrite'
import { signInErrorCode } from '@/lib/problems'

export async function signIn(form: FormData) {
  // Back to the route the form was on (only these two: never a URL from the request).
  const back = form.get('via') === 'relay' ? '/?via=relay' : '/'
  // The form shows the code; the terminal gets Appwrite's message too.
  const failed: (code: string, message?: string) => never = (code, message = '') => {
    console.error(`sign-in failed (${code})${message && `: ${message}`}`)
    redirect(`${back}${back.includes('?') ? '&' : '?'}signin=${code}`)
  }
  let session
  try {
    session = await adminAccount().createEmailPasswordSession({
      email: String(form.get('email') ?? ''),
      password: String(form.get('password') ?? ''),
    })
  } catch (error) {
    failed(signInErrorCode(error), String(error instanceof Error ? error.message : error))
  }
  // Appwrite sends the secret only to a caller it takes for an API key: without it there is no session to keep.
  if (!session?.secret) failed('no_session_secret', 'Appwrite did not take APPWRITE_API_KEY as an API key')
  // Next's cookies().set, default encoding (encodeURIComponent): the service decodes it the same way.
  ;(await cookies()).set(sessionCookieName(), session.secret, {
    httpOnly: true,
    secure: process.env.NODE_ENV === 'production',
    sameSite: 'lax',
    path: '/',
    expires: new Date(session.expire),
  })
  redirect(back)
}
