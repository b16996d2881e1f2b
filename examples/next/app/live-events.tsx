'use client'

// The SDK's socket and the helper live in the browser: started once the component mounts.
import { useRouter } from 'next/navigation'
import { useEffect, useRef, useState } from 'react'
import { startLive, type LiveEvent } from '@/lib/live'
import type { Problem } from '@/lib/problems'
import ProblemBox from './problem-box'

export default function LiveEvents(props: { endpoint: string; project: string; relay: boolean }) {
  const router = useRouter()
  const [status, setStatus] = useState('starting')
  const [problem, setProblem] = useState<Problem>()
  const [events, setEvents] = useState<LiveEvent[]>([])
  const live = useRef<ReturnType<typeof startLive> | null>(null)

  useEffect(() => {
    live.current ??= startLive({
      endpoint: props.endpoint,
      project: props.project,
      relay: props.relay,
      onStatus: (next, found) => {
        setStatus(next)
        setProblem(found)
      },
      onEvent: (event) => setEvents((seen) => [event, ...seen].slice(0, 50)),
      // The server component renders the sign-in form once the cookie is gone.
      onSignedOut: () => router.refresh(),
    })
    // Not stopped on unmount: React's development double-mount would open two sockets.
  }, [props.endpoint, props.project, props.relay, router])

  return (
    <>
      <section className="card">
        <div className="status-row">
          <span>
            {props.relay ? 'Relay' : 'Helper'} status:{' '}
            <span id="status" className="badge" data-status={status}>
              {status}
            </span>
          </span>
          <button id="signout" className="secondary" onClick={() => live.current?.signOut()}>
            Sign out
          </button>
        </div>
        {problem && <ProblemBox id="problem" title="Realtime problem" problem={problem} />}
      </section>
      <section className="card">
        <h2>Events</h2>
        <ol id="events">
          {events.length === 0 && <li className="empty">None yet (token-exchange demo publishes one every 2 s).</li>}
          {events.map((event) => (
            <li key={event.id} className="event">
              <time>{event.time}</time>
              <code className="event-name">{event.name}</code>
              <span className="event-fields">
                {event.fields.map((field, i) => (
                  <span key={i}>{field}</span>
                ))}
              </span>
            </li>
          ))}
        </ol>
      </section>
    </>
  )
}
