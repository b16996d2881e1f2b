// One deployment as users run it, on this machine: the app and Appwrite (the demo in --site-only
// mode: its page, its server-side sign-in, and the emulator), the service as its own process
// (`python -m appwrite_token_exchange serve`, configured only through its environment), nginx terminating TLS in
// front of all three under real-looking host names, and Chromium reaching them through it.

import { controlApi, freePort, record, startBrowser, startDemo, startProcess } from './support.js';
import { PROXY_ADDRESS, startProxy } from './proxy.js';

export const APP_HOST = 'app.example.test';
export const APP = `https://${APP_HOST}`;
export const SERVICE_SUBDOMAIN = 'realtime.example.test';
export const HOSTILE = 'https://evil.example.test';
// Appwrite on another site (as Appwrite Cloud is), or on a custom domain under the app's domain.
export const APPWRITE_ELSEWHERE = 'appwrite.cloud.test';
export const APPWRITE_CUSTOM_DOMAIN = 'appwrite.example.test';
// The emulator's instance key (public, local development only); the service verifies tokens with it.
const EMULATOR_JWT_SECRET = 'emulator-openssl-key-v1-for-local-use-only';
const HOSTILE_PAGE = '<!doctype html><title>a sibling site</title><p>Another app on the same parent domain.</p>';

/**
 * Start a deployment. Options:
 * - topology: 'same-host' (the app's host routes /v1/realtime to the service) or 'subdomain'
 *   (the service on realtime.example.test, the app's origin in ALLOWED_ORIGINS);
 * - mode: the emulated Appwrite ('cloud', '1.9', '1.8');
 * - appwriteHost: where the browser reaches Appwrite;
 * - cookieDomain: Domain= of the app's session cookie (undefined: host-only);
 * - trustProxy: whether TRUSTED_PROXIES names the proxy (the misconfiguration leaves it out).
 */
export async function startDeployment({
  topology = 'same-host',
  mode = 'cloud',
  appwriteHost = APPWRITE_ELSEWHERE,
  cookieDomain,
  trustProxy = true,
} = {}) {
  const serviceHost = topology === 'subdomain' ? SERVICE_SUBDOMAIN : APP_HOST;
  const stoppers = [];
  const stopAll = async () => {
    for (const stop of stoppers.reverse()) await stop().catch(() => {});
  };
  try {
    const site = await startDemo({
      mode,
      siteOnly: true,
      env: {
        DEMO_PUBLISH_SECONDS: '0',
        DEMO_PUBLIC_ORIGIN: APP,
        DEMO_APPWRITE_PUBLIC_ENDPOINT: `https://${appwriteHost}/v1`,
        DEMO_TOKEN_URL: topology === 'subdomain' ? `https://${serviceHost}/v1/realtime/token` : '',
        DEMO_RELAY_ENDPOINT: topology === 'subdomain' ? `wss://${serviceHost}/v1` : '',
        DEMO_COOKIE_DOMAIN: cookieDomain ?? '',
      },
    });
    stoppers.push(site.stop);

    const servicePort = await freePort();
    const serviceEnv = {
      APPWRITE_ENDPOINT: `${site.emulatorUrl}/v1`,
      APPWRITE_PROJECT_ID: 'demo',
      APPWRITE_JWT_SECRET: EMULATOR_JWT_SECRET,
      HOST: '127.0.0.1',
      PORT: String(servicePort),
      LOG_LEVEL: 'info',
      LOG_FORMAT: 'json',
      DRAIN_TIMEOUT_SECONDS: '1',
      TRUSTED_PROXIES: trustProxy ? `${PROXY_ADDRESS}/32` : '',
      ALLOWED_ORIGINS: topology === 'subdomain' ? APP : '',
    };
    const service = await startProcess('token-exchange serve', ['-m', 'appwrite_token_exchange', 'serve'], {
      env: serviceEnv,
      isReady: async () => (await fetch(`http://127.0.0.1:${servicePort}/livez`).catch(() => null))?.ok,
    });
    stoppers.push(service.stop);

    const realtimeRoute = { path: '/v1/realtime', to: servicePort };
    const servers = [
      { name: APP_HOST, routes: [{ path: '/', to: site.port }, ...(topology === 'same-host' ? [realtimeRoute] : [])] },
      { name: appwriteHost, routes: [{ path: '/v1/', to: site.emulatorPort }] },
      { name: new URL(HOSTILE).host, html: HOSTILE_PAGE },
    ];
    if (topology === 'subdomain') servers.push({ name: SERVICE_SUBDOMAIN, routes: [realtimeRoute] });
    const proxy = await startProxy(servers);
    stoppers.push(proxy.stop);

    const browser = await startBrowser({ args: proxy.browserArgs });
    stoppers.push(browser.close);

    return {
      site,
      service,
      proxy,
      browser,
      serviceUrl: `https://${serviceHost}`,
      control: controlApi(site.emulatorUrl),
      /** The service's structured log lines (JSON), optionally only one event. */
      serviceLog(event) {
        const lines = service
          .output()
          .split('\n')
          .filter((line) => line.startsWith('{'))
          .map((line) => JSON.parse(line));
        return event ? lines.filter((line) => line.event === event) : lines;
      },
      /** How many calls Appwrite received, by route ("POST /v1/account/jwts", ...). */
      async appwriteCalls() {
        return (await this.control('/stats')).requests;
      },
      /** A fresh page in the browser, recorded from its first request on. */
      async newPage() {
        const page = await browser.context.newPage();
        const errors = [];
        page.on('pageerror', (error) => errors.push(error.message));
        return { page, record: record(page), errors };
      },
      stop: stopAll,
      /** Diagnostics for a failed test: every process's output and nginx's error log. */
      async diagnostics() {
        return [
          `site:\n${site.output()}`,
          `service:\n${service.output()}`,
          `nginx access:\n${(await proxy.accessLog()).map((l) => JSON.stringify(l)).join('\n')}`,
          `nginx errors:\n${await proxy.errorLog()}`,
        ].join('\n');
      },
    };
  } catch (error) {
    await stopAll();
    throw error;
  }
}

/** Header lines of a recorded response, as the browser's network stack received them. */
export function repeatedHeaders(lines) {
  const names = lines.map(({ name }) => name.toLowerCase()).filter((name) => name !== 'set-cookie');
  return [...new Set(names.filter((name, at) => names.indexOf(name) !== at))];
}

/** Every value of one header (case-insensitive) among raw header lines. */
export function headerValues(lines, name) {
  return lines.filter((line) => line.name.toLowerCase() === name.toLowerCase()).map((line) => line.value);
}
