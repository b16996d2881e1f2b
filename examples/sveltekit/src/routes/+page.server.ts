import { redirect } from '@sveltejs/kit';
import { adminAccount, appwrite, sessionAccount, sessionCookieName } from '$lib/server/appwrite';
import type { Actions, PageServerLoad } from './$types';

export const load: PageServerLoad = async ({ cookies }) => {
  const user = await sessionAccount(cookies)?.get().catch(() => null);
  return {
    user: user ? { id: user.$id, name: user.name, email: user.email } : null,
    endpoint: appwrite.endpoint,
    project: appwrite.project,
  };
};

export const actions: Actions = {
  signIn: async ({ request, cookies }) => {
    const form = await request.formData();
    let session;
    try {
      session = await adminAccount().createEmailPasswordSession({
        email: String(form.get('email') ?? ''),
        password: String(form.get('password') ?? ''),
      });
    } catch {
      redirect(303, '/?failed=1');
    }
    // SvelteKit's cookies.set, default encoding (encodeURIComponent): the service decodes it the
    // same way. httpOnly is the default; so is Secure, except on http://localhost.
    cookies.set(sessionCookieName, session.secret, {
      path: '/',
      httpOnly: true,
      sameSite: 'lax',
      expires: new Date(session.expire),
    });
    redirect(303, '/');
  },
};
