'use server'

import { cookies } from 'next/headers'
import { redirect } from 'next/navigation'
import { adminAccount, sessionCookieName } from '@/lib/appwrite'

export async function signIn(form: FormData) {
  let session
  try {
    session = await adminAccount().createEmailPasswordSession({
      email: String(form.get('email') ?? ''),
      password: String(form.get('password') ?? ''),
    })
  } catch {
    redirect('/?failed=1')
  }
  // Next's cookies().set, default encoding (encodeURIComponent): the service decodes it the same way.
  ;(await cookies()).set(sessionCookieName, session.secret, {
    httpOnly: true,
    secure: process.env.NODE_ENV === 'production',
    sameSite: 'lax',
    path: '/',
    expires: new Date(session.expire),
  })
  redirect('/')
}
