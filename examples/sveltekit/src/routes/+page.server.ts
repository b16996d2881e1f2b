import { redirect } from '@sveltejs/kit';
import { adminAccount, appwrite, envNames, sessionAccount, sessionCookieName } from '$lib/server/appwrite';
import { safeCode, signInErrorCode, signInProblem } from '$lib/problems';
import type { Actions, PageServerLoad } from './$types';

export const load: PageServerLoad = async ({ cookies, url }) => {
  const { endpoint, project } = appwrite();
  const user = await sessionAccount(cookies)?.get().catch(() => null);
  const failed = safeCode(url.searchParams.get('signin'));
  return {
    user: user ? { id: user.$id, name: user.name, email: user.email } : null,
    endpoint,
    project,
    signInFailure: failed ? signInProblem(failed, envNames) : null,
  };
};

export const actions: Actions = {
  signIn: async ({ request, cookies }) => {
    const form = await request.formData();
    // Back to the route the form was on (only these two: never a URL from the request).
    const back = form.get('via') === 'relay' ? '/?via=relay' : '/';
    // The form shows the code; the terminal gets Appwrite's message too.
    const failed: (code: string, message?: string) => never = (code, message = '') => {
      console.error(`sign-in failed (${code})${message && `: ${message}`}`);
      redirect(303, `${back}${back.includes('?') ? '&' : '?'}signin=${code}`);
    };
    let session;
    try {
      session = await adminAccount().createEmailPasswordSession({
        email: String(form.get('email') ?? ''),
        password: String(form.get('password') ?? ''),
      });
    } catch (error) {
      failed(signInErrorCode(error), String(error instanceof Error ? error.message : error));
    }
    // Appwrite sends the secret only to a caller it takes for an API key: without it there is no session to keep.
    if (!session.secret) failed('no_session_secret', 'Appwrite did not take APPWRITE_API_KEY as an API key');
    // SvelteKit's cookies.set, default encoding (encodeURIComponent): the service decodes it the
    // same way. httpOnly is the default; so is Secure, except on http://localhost.
    cookies.set(sessionCookieName(), session.secret, {
      path: '/',
      httpOnly: true,
      sameSite: 'lax',
      expires: new Date(session.expire),
    });
    redirect(303, back);
  },
};
