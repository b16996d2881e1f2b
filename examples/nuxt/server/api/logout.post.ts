export default defineEventHandler(async (event) => {
  // The session ends in Appwrite (a cookie copied elsewhere stops working too), then here.
  await sessionAccount(event)?.deleteSession({ sessionId: 'current' }).catch(() => {})
  deleteCookie(event, sessionCookieName(event), { path: '/' })
  setResponseStatus(event, 204)
  return null
})
