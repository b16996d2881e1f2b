export default defineEventHandler(async (event) => {
  const form = await readFormData(event)
  try {
    const session = await adminAccount(event).createEmailPasswordSession({
      email: String(form.get('email') ?? ''),
      password: String(form.get('password') ?? ''),
    })
    // h3's setCookie, default encoding (encodeURIComponent): the service decodes it as h3 does.
    setCookie(event, sessionCookieName(event), session.secret, {
      httpOnly: true,
      secure: !import.meta.dev,
      sameSite: 'lax',
      path: '/',
      expires: new Date(session.expire),
    })
  } catch {
    return sendRedirect(event, '/?failed=1', 303)
  }
  return sendRedirect(event, '/', 303)
})
