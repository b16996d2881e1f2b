// The demo page. The session is in an httpOnly cookie that this script cannot read; Realtime is
// authenticated either with short-lived JWTs from POST /v1/realtime/token, minted by the browser
// helper (realtime-auth.js) whenever the SDK is about to open a socket, or by the relay (?via=relay), which holds no token at all, or,
// where Appwrite shares the app's parent domain and the session cookie reaches its Realtime
// handshake, by that cookie alone (?via=cookie: no service involved).
//
// Page parameters: via=jwt|relay|cookie, channels=a,b (default: account and a public channel),
// shared=1 (every tab of the demo on one socket, held by a SharedWorker: shared-realtime.js),
// minRefresh=<seconds> (the helper's minRefreshIntervalSeconds: how soon a token Appwrite refused
// may be replaced).
//
// What happens is also recorded in `window.demo`, which the end-to-end tests read.

const MAX_ITEMS = 50;
const params = new URLSearchParams(location.search);
const via = ['relay', 'cookie'].includes(params.get('via')) ? params.get('via') : 'jwt';
const shared = params.get('shared') === '1' && via !== 'cookie';
const $ = (id) => document.getElementById(id);

const demo = {
  via,
  config: null,
  statuses: [],
  events: [],
  sockets: [],
  log: [],
  subscribed: false,
};
window.demo = demo;

let realtime = null;
let auth = null;
let live = null; // the shared mode's handle: the socket and the helper are in the worker
let tokenExpiresAt = null;

main().catch((error) => showProblem(`The page failed to start: ${error?.message ?? error}`));

async function main() {
  const config = await getJson('/demo/config');
  demo.config = config;
  $('server').textContent =
    `Appwrite emulator in mode ${config.mode} (project ${config.project}) · ` +
    `tokens live ${config.tokenTtlSeconds} s · the relay re-checks sessions every ` +
    `${config.relayRevalidateSeconds} s`;
  if (config.sdk.problem) {
    showProblem(config.sdk.problem);
    return;
  }
  if (!config.signedIn) {
    showSignIn(config);
    return;
  }
  $('session').hidden = false;
  $('user-name').textContent = config.user.name || config.user.email;
  $('user-id').textContent = config.user.id;
  showCookieCheck(config);
  $(`via-${via}`).classList.add('current');
  $('publish').addEventListener('click', publishNow);
  $('logout').addEventListener('click', signOut);
  $('logout-everywhere').hidden = !config.signOutEverywhere;
  $('logout-everywhere').addEventListener('click', signOutEverywhere);
  showTokenLife();
  setInterval(showTokenLife, 250);

  const channels = (params.get('channels') ?? `account,${config.publicChannel}`)
    .split(',')
    .map((channel) => channel.trim())
    .filter(Boolean);
  $('channels').textContent = channels.join(', ');

  const { Client, Realtime } = await import('appwrite');
  if (shared) {
    await startShared(config, channels, { Client, Realtime });
    return;
  }
  const client = new Client().setEndpoint(config.endpoint).setProject(config.project);
  realtime = new Realtime(client);
  realtime.onOpen(() => watchSocket(realtime.socket));

  if (via === 'relay') {
    // The unmodified SDK, pointed at this origin: the relay authenticates upstream with the
    // session from the cookie, so no credential reaches this page at all.
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    const relayEndpoint = config.relayEndpoint ?? `${scheme}://${location.host}/v1`;
    client.setEndpointRealtime(relayEndpoint);
    $('route').textContent = `relay: ${relayEndpoint}/realtime (no token in the page)`;
    setStatus('relay', 'not used: the relay needs no token');
  } else if (via === 'cookie') {
    // Appwrite reads its own session cookie on the handshake: nothing to fetch, nothing to set.
    $('route').textContent = `the Appwrite session cookie: socket to ${config.endpoint} (no service involved)`;
    setStatus('cookie', 'not used: the browser sends the session cookie to Appwrite itself');
  } else {
    $('route').textContent = `token route: POST ${config.tokenUrl}, socket to ${config.endpoint}`;
    const { realtimeAuth } = await import('/demo/realtime-auth.js');
    const options = { tokenUrl: config.tokenUrl, realtime, onStatus };
    const minRefresh = Number(params.get('minRefresh'));
    if (Number.isFinite(minRefresh) && minRefresh > 0) options.minRefreshIntervalSeconds = minRefresh;
    auth = realtimeAuth(client, options);
    demo.auth = auth; // for the tests: ready(), refresh(), stop() and the status; never a token
    try {
      await auth.ready();
    } catch {
      return; // onStatus has shown why (signed out, unsupported, error)
    }
  }

  await realtime.subscribe(channels, onEvent);
  demo.subscribed = true;
  log(`subscribed to ${channels.join(', ')}`);
}

/** Every tab on one socket: the SharedWorker's hub subscribes for this tab and forwards events. */
async function startShared(config, channels, sdk) {
  const { sharedRealtime } = await import('/demo/shared-realtime.js');
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  const relayEndpoint = via === 'relay' ? config.relayEndpoint ?? `${scheme}://${location.host}/v1` : undefined;
  live = sharedRealtime({
    endpoint: config.endpoint,
    project: config.project,
    tokenUrl: config.tokenUrl,
    relayEndpoint,
    worker: () => new SharedWorker('/demo/static/realtime-worker.js', { type: 'module', name: 'appwrite-realtime' }),
    sdk,
    onStatus,
    onSocket: showSharedSocket,
  });
  demo.live = live; // for the tests: its mode ('shared' or 'in-page') and status
  $('route').textContent = `${relayEndpoint ? `relay: ${relayEndpoint}/realtime` : `token route: POST ${config.tokenUrl}`}, one socket for every tab (shared mode)`;
  try {
    await live.subscribe(channels, onEvent);
  } catch {
    return; // onStatus has shown why
  }
  demo.subscribed = true;
  log(`subscribed to ${channels.join(', ')} (${live.mode === 'shared' ? 'through the SharedWorker' : 'in this tab: no SharedWorker'})`);
}

function showSharedSocket(socket) {
  demo.sockets.push({ ...socket });
  if (socket.state === 'connected') {
    const user = socket.user;
    setSocketState('connected', user ? `connected as ${user.name || user.id}` : 'connected as a guest (no user)');
  } else if (socket.state === 'closed') {
    setSocketState('closed', `closed with code ${socket.code}`);
  } else {
    setSocketState('open', 'open (shared)');
  }
}

function onStatus(status, detail) {
  demo.statuses.push({ status, detail: { ...detail } });
  switch (status) {
    case 'relay':
      setStatus('relay', 'not used: the relay needs no token');
      break;
    case 'authenticated':
      tokenExpiresAt = performance.now() + detail.expiresIn * 1000;
      setStatus(status, `authenticated: a fresh ${detail.expiresIn} s token is set in the SDK client for the next socket`);
      break;
    case 'backing-off':
      setStatus(status, `backing off (${detail.code}), retrying in ${Math.ceil(detail.retryInMs / 1000)} s`);
      break;
    case 'signed-out':
      tokenExpiresAt = null;
      setStatus(status, `signed out (${detail.code}): the helper has stopped fetching tokens`);
      // Appwrite keeps an open socket alive after logout; the page (or the shared hub) closes it.
      realtime?.disconnect();
      showSignIn(demo.config);
      break;
    case 'unsupported':
      tokenExpiresAt = null;
      setStatus(
        status,
        detail.reason === 'server'
          ? `unsupported: this Appwrite server (mode ${demo.config.mode}) ignores the JWT on the Realtime ` +
              'handshake, so the socket came up as a guest. '
          : `unsupported: the web SDK ${detail.sdkVersion} is too old (26.1.0 or newer sends the JWT). `,
      );
      $('auth-status').append(relayLink());
      realtime?.disconnect();
      break;
    case 'cookie':
      // Appwrite shares the app's parent domain, so the session cookie rides on the handshake
      // and authenticates the socket by itself; the helper removed the JWT and stopped.
      tokenExpiresAt = null;
      setStatus(status, 'authenticated by the Appwrite session cookie: the socket needs no JWT here');
      break;
    default:
      tokenExpiresAt = null;
      setStatus(status, `error (${detail.code}${detail.httpStatus ? `, HTTP ${detail.httpStatus}` : ''})`);
      if (detail.code === 'platform_not_registered') {
        // Appwrite refused this page's Origin (error frame 1008); the helper has stopped the SDK.
        showProblem(`Appwrite refused this page's origin: add ${location.hostname} as a Web platform of the project.`);
      }
  }
  log(`helper: ${status}${detail.code ? ` (${detail.code})` : ''}`);
}

function relayLink() {
  const link = document.createElement('a');
  const next = new URLSearchParams(params);
  next.set('via', 'relay');
  link.href = `/?${next}`;
  link.textContent = 'Use the relay instead.';
  return link;
}

function setStatus(status, text) {
  const element = $('auth-status');
  element.dataset.status = status;
  element.textContent = text;
}

function showTokenLife() {
  const element = $('token-life');
  if (tokenExpiresAt === null) {
    element.textContent = via === 'jwt' ? '—' : 'none: the page never holds one';
    return;
  }
  const left = Math.round((tokenExpiresAt - performance.now()) / 1000);
  element.textContent =
    left > 0
      ? `expires in ${left} s (only needed to open a socket)`
      : `expired ${-left} s ago (an open socket stays authenticated; a fresh token is minted when a socket closes)`;
}

/** Follow each socket the SDK opens: who Appwrite says we are, error frames, close codes. */
function watchSocket(socket) {
  if (!socket) return;
  const entry = { url: redactJwt(socket.url), user: undefined, errors: [], closeCode: undefined };
  demo.sockets.push(entry);
  setSocketState('open', `open: ${entry.url}`);
  socket.addEventListener('message', (event) => {
    let frame;
    try {
      frame = JSON.parse(event.data);
    } catch {
      return;
    }
    if (frame?.type === 'connected') {
      const user = frame.data?.user;
      entry.user = user ? user.$id : null;
      setSocketState('connected', user ? `connected as ${user.name || user.$id}` : 'connected as a guest (no user)');
      log(user ? `socket connected as ${user.name || user.$id}` : 'socket connected as a guest');
    } else if (frame?.type === 'error') {
      entry.errors.push({ code: frame.data?.code, message: frame.data?.message });
      log(`socket error frame ${frame.data?.code}: ${frame.data?.message}`);
    }
  });
  socket.addEventListener('close', (event) => {
    entry.closeCode = event.code;
    entry.closeReason = event.reason;
    const why = event.code === 1008 ? ' (policy violation: the SDK will not reconnect)' : '';
    setSocketState('closed', `closed with code ${event.code}${why}`);
    log(`socket closed with code ${event.code}${event.reason ? ` (${event.reason})` : ''}`);
    import('/demo/realtime-auth.js').then(({ closedBySignOut }) => {
      if (closedBySignOut(event)) setSocketState('closed', `closed by the relay: signed out (${event.reason})`);
    });
  });
}

function setSocketState(state, text) {
  const element = $('socket-state');
  element.dataset.state = state;
  element.textContent = text;
}

function onEvent(message) {
  demo.events.push({ channels: message.channels, events: message.events, payload: message.payload });
  const item = document.createElement('li');
  const time = new Date().toLocaleTimeString();
  item.textContent = `${time} · ${message.channels.join(', ')} · ${JSON.stringify(message.payload)}`;
  prepend($('events'), item);
}

async function publishNow() {
  const response = await fetch('/demo/publish', { method: 'POST' });
  const body = response.ok ? await response.json() : null;
  log(body ? `published: delivered to ${body.delivered} subscription(s)` : `publish failed: HTTP ${response.status}`);
}

async function signOut() {
  const response = await fetch('/demo/logout', { method: 'POST' });
  if (!response.ok) {
    log(`sign-out failed: HTTP ${response.status}`);
    return;
  }
  log('signed out: the server deleted the Appwrite session and cleared the cookie');
  if (auth || (live && via === 'jwt')) {
    // The next token request finds the session gone (401): the helper says signed-out and stops.
    await (auth ?? live).refresh();
  } else {
    log(`the relay closes this socket within ${demo.config.relayRevalidateSeconds} s`);
    showSignIn(demo.config);
  }
}

async function signOutEverywhere() {
  const response = await fetch('/demo/logout-everywhere', { method: 'POST' });
  const body = response.ok ? await response.json() : null;
  if (!body) {
    log(`sign-out everywhere failed: HTTP ${response.status}`);
    return;
  }
  const { closedHere, broadcast } = body.kick ?? {};
  log(`signed out everywhere: every session deleted in Appwrite; the service closed ${closedHere} relayed ` +
      `socket(s) on its replica at once (${broadcast === 'redis' ? 'and told the others through Redis' : 'one replica'})`);
  if (auth || (live && via === 'jwt')) await (auth ?? live).refresh();
  showSignIn(demo.config);
}

function showSignIn(config) {
  $('signin').hidden = false;
  if (!$('session').hidden) {
    // Signed out on this page: keep the status and the log, drop what needs a session.
    $('whoami').textContent = 'Signed out.';
    $('actions').hidden = true;
  }
  const form = $('signin-form');
  form.email.value = config.demoUser.email;
  form.password.value = config.demoUser.password;
  const kept = new URLSearchParams(params);
  kept.delete('login');
  form.page.value = kept.toString();
  $('login-failed').hidden = params.get('login') !== 'failed';
}

function showCookieCheck(config) {
  // The session cookie is httpOnly: it is not in document.cookie, whatever else is.
  const names = document.cookie
    .split(';')
    .map((pair) => pair.split('=')[0].trim())
    .filter(Boolean);
  const cookieName = `a_session_${config.project}`;
  $('cookie-check').textContent = names.includes(cookieName)
    ? `${cookieName} is readable: it is NOT httpOnly`
    : `no ${cookieName} (httpOnly, invisible to this script)`;
}

function showProblem(text) {
  const element = $('problem');
  element.hidden = false;
  element.textContent = text;
}

function log(text) {
  demo.log.push(text);
  const item = document.createElement('li');
  item.textContent = `${new Date().toLocaleTimeString()} ${text}`;
  prepend($('log'), item);
}

function prepend(list, item) {
  list.prepend(item);
  while (list.children.length > MAX_ITEMS) list.lastElementChild.remove();
}

function redactJwt(url) {
  const parsed = new URL(url);
  if (parsed.searchParams.has('jwt')) parsed.searchParams.set('jwt', '…');
  return parsed.toString();
}

async function getJson(url) {
  const response = await fetch(url, { headers: { Accept: 'application/json' } });
  if (!response.ok) throw new Error(`${url} answered HTTP ${response.status}`);
  return response.json();
}
