import { appwrite, envNames, sessionAccount } from '@/lib/appwrite'
import { safeCode, signInProblem } from '@/lib/problems'
import { signIn } from './actions'
import LiveEvents from './live-events'
import ProblemBox from './problem-box'

type Query = { via?: string; signin?: string }

// Rendered on the server for each request: the httpOnly cookie is read here, never in the page.
export default async function Home({ searchParams }: { searchParams: Promise<Query> }) {
  const { via, signin } = await searchParams
  const relay = via === 'relay'
  const { endpoint, project } = appwrite()
  const user = await (await sessionAccount())?.get().catch(() => null)
  const failed = safeCode(signin)
  return (
    <main>
      <header>
        <h1>Next.js · Appwrite Realtime</h1>
        <p className="subtitle">Signed in on the server; the session stays in an httpOnly cookie.</p>
      </header>
      {user ? (
        <>
          <section className="card">
            <p id="user">
              Signed in as <strong>{user.name || user.email}</strong> <code id="user-id">{user.$id}</code>
            </p>
            <nav className="routes">
              Realtime through:
              <a href="/" aria-current={relay ? undefined : 'page'}>JWT route</a>
              <a href="/?via=relay" aria-current={relay ? 'page' : undefined}>relay</a>
            </nav>
          </section>
          <LiveEvents endpoint={endpoint} project={project} relay={relay} />
        </>
      ) : (
        <form id="signin" className="card" action={signIn}>
          <h2>Sign in</h2>
          {failed && <ProblemBox id="signin-error" title="Sign-in failed" problem={signInProblem(failed, envNames)} />}
          <label>
            Email <input name="email" type="email" defaultValue="demo@example.com" />
          </label>
          <label>
            Password <input name="password" type="password" defaultValue="demo-password" />
          </label>
          {/* Signing in from the relay route lands back on it. */}
          {relay && <input type="hidden" name="via" value="relay" />}
          <button id="signin-button">Sign in</button>
        </form>
      )}
    </main>
  )
}
