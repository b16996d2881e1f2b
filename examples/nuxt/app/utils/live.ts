// The browser side: the official web SDK subscribes to the user's `account` channel, either on
// Appwrite itself with short-lived JWTs from the token service (the helper mints one per socket open), or
// through the service's relay on this page's own origin (no token in the page at all). Whatever
// goes wrong is reported with its code, what the service said, and the fix (problems.ts).
import { Client, Realtime } from 'appwrite'
import { DEFAULT_TOKEN_URL, realtimeAuth, type RealtimeAuth } from '@appwrite-token-exchange/realtime-auth'
import { liveProblem, safeCode, type Problem } from './problems'

export interface LiveEvent {
  id: number
  /** When it arrived, as the browser's clock shows it. */
  time: string
  /** The event's most specific name, e.g. `users.<id>.update.prefs`. */
  name: string
  /** The payload's top-level fields as `key: value`, shortened. */
  fields: string[]
}

export interface LiveOptions {
  endpoint: string
  project: string
  relay: boolean
  /**
   * The helper's status on the JWT route (`authenticated`, `backing-off`, `error`, ...); on the
   * relay `connecting`, `relay` (open), `closed`, `refused` or `error`; `signed-out` on both.
   * `problem` says what is wrong, while something is.
   */
  onStatus: (status: string, problem?: Problem) => void
  onEvent: (event: LiveEvent) => void
  /** The session ended (signed out here or elsewhere): the page shows the sign-in form again. */
  onSignedOut: () => void
}

interface ProblemBody {
  code?: string
  detail?: string
}

/** The application/problem+json body of a refused answer, if it is one. */
async function readProblem(response: Response): Promise<ProblemBody | undefined> {
  const body = await response.json().catch(() => undefined)
  if (typeof body !== 'object' || body === null) return undefined
  return { code: safeCode(body.code), detail: typeof body.detail === 'string' ? body.detail : undefined }
}

function readable(id: number, events: string[], payload: unknown): LiveEvent {
  const fields = Object.entries(typeof payload === 'object' && payload !== null ? payload : {})
    .slice(0, 6)
    .map(([key, value]) => {
      const text = typeof value === 'string' ? value : JSON.stringify(value)
      return `${key}: ${text.length > 60 ? `${text.slice(0, 59)}…` : text}`
    })
  return { id, time: new Date().toLocaleTimeString(), name: events[0] ?? '(unnamed)', fields }
}

export function startLive(options: LiveOptions) {
  const client = new Client().setEndpoint(options.endpoint).setProject(options.project)
  const realtime = new Realtime(client)
  const explain = (code: string, detail?: string) => liveProblem(code, detail, location.origin)
  let auth: RealtimeAuth | undefined
  let ended = false
  let eventCount = 0

  function report(status: string, found?: Problem) {
    if (!ended) options.onStatus(status, found)
  }

  function signedOut() {
    if (ended) return
    report('signed-out')
    ended = true
    auth?.stop()
    void realtime.disconnect()
    options.onSignedOut()
  }

  // Appwrite's own refusals arrive as error frames. After a 1008 (e.g. "Invalid Origin") Appwrite
  // drops the connection, and the SDK would reconnect every second for ever: stop it here (the
  // helper does too). Other errors (a refused JWT, a dropped socket) the SDK and the helper recover from.
  realtime.onError((error, code) => {
    if (code !== 1008) return
    auth?.stop()
    void realtime.disconnect()
    const message = error?.message ?? ''
    report('error', explain(/invalid origin/i.test(message) ? 'invalid_origin' : 'appwrite_1008', message))
  })

  if (options.relay) {
    // The unmodified SDK, pointed at this origin: the dev proxy (or, in production, the reverse
    // proxy) sends /v1/realtime to the service, which authenticates upstream with the cookie.
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws'
    client.setEndpointRealtime(`${scheme}://${location.host}/v1`)
    let opened = false
    let explained = false
    realtime.onOpen(() => {
      opened = true
      report('relay')
      // Why the relay closed a socket is in its close frame, which the SDK's onClose does not
      // pass on; its `socket` is private in the SDK's types (the helper reads it too).
      const socket = (realtime as unknown as { socket?: WebSocket }).socket
      socket?.addEventListener('close', (event) => {
        if (event.reason === 'session_ended') signedOut()
        // 1008 is final for the SDK; anything else it reconnects from.
        else report('closed', event.code === 1008 ? explain('appwrite_1008', event.reason) : undefined)
      })
    })
    realtime.onClose(() => {
      if (!opened && !explained) {
        explained = true
        void explainRefusal()
      }
      opened = false
    })
    report('connecting')
  } else {
    // The helper reports a problem's `code`; the service's `detail` is in the same answer, so
    // the helper is given a fetch that keeps it.
    let lastProblem: ProblemBody | undefined
    const fetchKeepingProblem = async (input: string, init: RequestInit) => {
      const response = await fetch(input, init)
      lastProblem = response.ok ? undefined : await readProblem(response.clone())
      return response
    }
    auth = realtimeAuth(client, {
      realtime,
      env: { fetch: fetchKeepingProblem },
      onStatus: (status, detail) => {
        if (status === 'signed-out') return signedOut()
        // Appwrite keeps a JWT-opened socket after the helper gives up: close it here.
        if (status === 'error' || status === 'unsupported') void realtime.disconnect()
        const code = status === 'unsupported' ? `unsupported_${detail.reason}` : 'code' in detail ? detail.code : undefined
        const said = code && code === lastProblem?.code ? lastProblem.detail : undefined
        report(status, code ? explain(code, said) : undefined)
      },
    })
  }

  /**
   * A refused WebSocket handshake shows the page no status and no body. The token route runs the
   * same Origin check: asked without the cookie it can only refuse, so it names an origin problem
   * and never mints a token.
   */
  async function explainRefusal() {
    const response = await fetch(DEFAULT_TOKEN_URL, { method: 'POST', credentials: 'omit', headers: { 'X-CSRF': '1' } }).catch(() => undefined)
    const body = response && !response.ok ? await readProblem(response) : undefined
    if (body?.code === 'origin_not_allowed') {
      // Final: every retry would be refused the same way, so the SDK stops here.
      void realtime.disconnect()
      report('error', explain('origin_not_allowed', `The relay refused the handshake. ${body.detail ?? ''}`.trim()))
    } else {
      report('refused', explain('relay_refused'))
    }
  }

  const started = (async () => {
    await auth?.ready()
    await realtime.subscribe(['account'], (event) => options.onEvent(readable(++eventCount, event.events, event.payload)))
  })().catch(() => {}) // onStatus has said why (signed out, unsupported, error)

  return {
    started,
    /** End the session on the server, close the socket, and show the sign-in form again. */
    async signOut() {
      await fetch('/api/logout', { method: 'POST' })
      // The helper asks once more: the service answers 401, and the helper says `signed-out`.
      await auth?.refresh()
      signedOut()
    },
  }
}
