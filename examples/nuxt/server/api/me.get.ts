export default defineEventHandler(async (event) => {
  const user = await sessionAccount(event)?.get().catch(() => null)
  return { user: user ? { id: user.$id, name: user.name, email: user.email } : null }
})
