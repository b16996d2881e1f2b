'use client'

// The SDK's socket and the helper live in the browser: started once the component mounts.
import { useEffect, useRef, useState } from 'react'
import { startLive, type LiveEvent } from '@/lib/live'

export default function LiveEvents(props: { endpoint: string; project: string; relay: boolean }) {
  const [status, setStatus] = useState('starting')
  const [events, setEvents] = useState<LiveEvent[]>([])
  const live = useRef<ReturnType<typeof startLive> | null>(null)

  useEffect(() => {
    live.current ??= startLive({
      endpoint: props.endpoint,
      project: props.project,
      relay: props.relay,
      onStatus: setStatus,
      onEvent: (event) => setEvents((seen) => [event, ...seen]),
    })
    // Not stopped on unmount: React's development double-mount would open two sockets.
  }, [props.endpoint, props.project, props.relay])

  return (
    <section>
      <p>
        Helper status: <strong id="status" data-status={status}>{status}</strong>
      </p>
      <button id="signout" onClick={() => live.current?.signOut()}>
        Sign out
      </button>
      <ol id="events">
        {events.map((event, i) => (
          <li key={events.length - i} className="event">
            {event.events[0]} {JSON.stringify(event.payload)}
          </li>
        ))}
      </ol>
    </section>
  )
}
