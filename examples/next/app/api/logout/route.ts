import { cookies } from 'next/headers'
import { sessionAccount, sessionCookieName } from '@/lib/appwrite'

export async function POST() {
  // The session ends in Appwrite (a cookie copied elsewhere stops working too), then here.
  await (await sessionAccount())?.deleteSession({ sessionId: 'current' }).catch(() => {})
  ;(await cookies()).delete(sessionCookieName())
  return new Response(null, { status: 204 })
}
