// The browser side: the official web SDK subscribes to the user's `account` channel, either on
// Appwrite itself with short-lived JWTs from the token service (the helper keeps them fresh), or
// through the service's relay on this page's own origin (no token in the page at all).
import { Client, Realtime } from 'appwrite'
import { realtimeAuth, type RealtimeAuth } from '@appwrite-token-exchange/realtime-auth'

export interface LiveEvent {
  events: string[]
  payload: unknown
}

export interface LiveOptions {
  endpoint: string
  project: string
  relay: boolean
  /** The helper's status (`authenticated`, `signed-out`, ...), or `relay` / `closed` on the relay. */
  onStatus: (status: string, detail?: unknown) => void
  onEvent: (event: LiveEvent) => void
}

export function startLive(options: LiveOptions) {
  const client = new Client().setEndpoint(options.endpoint).setProject(options.project)
  const realtime = new Realtime(client)
  let auth: RealtimeAuth | undefined
  if (options.relay) {
    // The unmodified SDK, pointed at this origin: the dev proxy (or, in production, the reverse
    // proxy) sends /v1/realtime to the service, which authenticates upstream with the cookie.
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws'
    client.setEndpointRealtime(`${scheme}://${location.host}/v1`)
    realtime.onClose(() => options.onStatus('closed'))
    options.onStatus('relay')
  } else {
    auth = realtimeAuth(client, {
      realtime,
      onStatus: (status, detail) => {
        options.onStatus(status, detail)
        // Appwrite keeps a JWT-opened socket after the session ends: close it here.
        if (status === 'signed-out' || status === 'error') void realtime.disconnect()
      },
    })
  }
  const started = (async () => {
    await auth?.ready()
    await realtime.subscribe(['account'], (event) => options.onEvent({ events: event.events, payload: event.payload }))
  })().catch(() => {}) // onStatus has said why (signed out, unsupported, error)

  return {
    started,
    /** End the session on the server; the helper then finds it gone and says `signed-out`. */
    async signOut() {
      await fetch('/api/logout', { method: 'POST' })
      // The relay closes its socket itself at its next session check (RELAY_REVALIDATE_SECONDS).
      if (auth) await auth.refresh().catch(() => {})
    },
  }
}
