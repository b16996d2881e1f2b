import { appwrite, sessionAccount } from '@/lib/appwrite'
import { signIn } from './actions'
import LiveEvents from './live-events'

// Rendered on the server for each request: the httpOnly cookie is read here, never in the page.
export default async function Home({ searchParams }: { searchParams: Promise<{ via?: string; failed?: string }> }) {
  const { via, failed } = await searchParams
  const user = await (await sessionAccount())?.get().catch(() => null)
  return (
    <main>
      <h1>Next.js · Appwrite Realtime</h1>
      {user ? (
        <>
          <p id="user">
            Signed in as {user.name || user.email} (<span id="user-id">{user.$id}</span>)
          </p>
          <p>
            Realtime through: <a href="/">JWT route</a> · <a href="/?via=relay">relay</a>
          </p>
          <LiveEvents endpoint={appwrite.endpoint} project={appwrite.project} relay={via === 'relay'} />
        </>
      ) : (
        <form id="signin" action={signIn}>
          {failed && <p>Sign-in failed.</p>}
          <input name="email" type="email" defaultValue="demo@example.com" aria-label="email" />
          <input name="password" type="password" defaultValue="demo-password" aria-label="password" />
          <button id="signin-button">Sign in</button>
        </form>
      )}
    </main>
  )
}
