import { sessionAccount, sessionCookieName } from '$lib/server/appwrite';
import type { RequestHandler } from './$types';

export const POST: RequestHandler = async ({ cookies }) => {
  // The session ends in Appwrite (a cookie copied elsewhere stops working too), then here.
  await sessionAccount(cookies)?.deleteSession({ sessionId: 'current' }).catch(() => {});
  cookies.delete(sessionCookieName(), { path: '/' });
  return new Response(null, { status: 204 });
};
