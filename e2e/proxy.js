// A TLS reverse proxy in front of everything, as an Ingress controller or a Gateway would be:
// Debian's nginx with a self-signed certificate made for this run, keeping `Host`, setting
// `X-Forwarded-For` / `X-Forwarded-Proto`, and passing WebSocket upgrades. Chromium reaches it
// under real-looking host names through --host-resolver-rules and trusts the certificate for
// this run only (--ignore-certificate-errors-spki-list names exactly its public key).

import { execFile, spawn } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { accessSync, constants } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { connect as tlsConnect } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort, sleep, waitFor } from './support.js';

const run = promisify(execFile);
const NGINX = process.env.NGINX || firstExecutable(['/usr/sbin/nginx', '/usr/bin/nginx']);
// The proxy reaches the upstreams from this address, so the service can tell the proxy (its TCP
// peer) from the browser (127.0.0.1, which arrives in X-Forwarded-For).
export const PROXY_ADDRESS = '127.0.0.2';
// Every test host name; the certificate covers them all.
export const DOMAINS = ['example.test', 'cloud.test'];

function firstExecutable(paths) {
  for (const path of paths) {
    try {
      accessSync(path, constants.X_OK);
      return path;
    } catch {
      // not here
    }
  }
  return 'nginx';
}

/** A self-signed certificate for *.example.test and *.cloud.test, and the SPKI pin Chromium trusts. */
async function makeCertificate(dir) {
  const [cert, key] = [join(dir, 'cert.pem'), join(dir, 'key.pem')];
  const names = DOMAINS.flatMap((domain) => [`DNS:${domain}`, `DNS:*.${domain}`]).join(',');
  await run('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2',
    '-subj', '/CN=e2e.example.test', '-addext', `subjectAltName=${names}`, '-keyout', key, '-out', cert,
  ]);
  const pem = await readFile(cert, 'utf8');
  const spki = new X509Certificate(pem).publicKey.export({ type: 'spki', format: 'der' });
  return { cert, key, pem, spkiPin: createHash('sha256').update(spki).digest('base64') };
}

/**
 * nginx serving `servers`: [{ name, routes: [{ path, to: port }], html? }]. A server with `html`
 * answers every path with that page (a static site, e.g. a hostile one); otherwise each route's
 * path prefix is proxied to 127.0.0.1:port, and anything else is nginx's own 404.
 */
export async function startProxy(servers) {
  const dir = await mkdtemp(join(tmpdir(), 'e2e-nginx-'));
  const port = await freePort();
  const certificate = await makeCertificate(dir);
  const blocks = [];
  for (const server of servers) {
    const locations = [];
    if (server.html !== undefined) {
      await writeFile(join(dir, `${server.name}.html`), server.html);
      locations.push(`location / { default_type text/html; root ${dir}; try_files /${server.name}.html =404; }`);
    }
    for (const route of server.routes ?? []) {
      locations.push(`location ${route.path} { proxy_pass http://127.0.0.1:${route.to}; }`);
    }
    blocks.push(`  server {
    listen 127.0.0.1:${port} ssl;
    server_name ${server.name};
    ${locations.join('\n    ')}
  }`);
  }
  const user = process.getuid?.() === 0 ? 'user root;' : '';
  const config = `${user}
worker_processes 1;
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 512; }
http {
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  # What the tests read: method, host, path, status, and whether the session cookie rode along.
  map $cookie_a_session_demo $session_cookie { "" no; default yes; }
  log_format e2e '$request_method $host $uri $status cookie=$session_cookie';
  access_log ${dir}/access.log e2e;
  ssl_certificate ${certificate.cert};
  ssl_certificate_key ${certificate.key};
  # As an Ingress does it: Host kept, the client and the scheme forwarded, WebSockets upgraded.
  map $http_upgrade $connection_upgrade { default upgrade; '' close; }
  proxy_http_version 1.1;
  proxy_bind ${PROXY_ADDRESS};
  proxy_set_header Host $host;
  proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
  proxy_set_header X-Forwarded-Proto $scheme;
  proxy_set_header Upgrade $http_upgrade;
  proxy_set_header Connection $connection_upgrade;
  proxy_read_timeout 3600s;
  server {
    listen 127.0.0.1:${port} ssl default_server;
    return 421;
  }
${blocks.join('\n')}
}
`;
  const configPath = join(dir, 'nginx.conf');
  await writeFile(configPath, config);
  const child = spawn(NGINX, ['-e', join(dir, 'error.log'), '-p', dir, '-c', configPath], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (chunk) => (output += chunk));
  child.stderr.on('data', (chunk) => (output += chunk));
  const exited = new Promise((done) => child.once('exit', (code, signal) => done({ code, signal })));
  process.once('exit', () => child.kill('SIGKILL'));
  const errorLog = () => readFile(join(dir, 'error.log'), 'utf8').catch(() => '');
  await Promise.race([
    waitFor('nginx to listen', () => canConnect(port)),
    exited.then(async ({ code, signal }) => {
      throw new Error(`nginx exited (${code ?? signal}): ${output}${await errorLog()}`);
    }),
  ]);
  return {
    port,
    certificate,
    /** Chromium flags: every test host name goes to this proxy, and only its certificate is trusted. */
    browserArgs: [
      `--host-resolver-rules=${DOMAINS.map((domain) => `MAP *.${domain}:443 127.0.0.1:${port}`).join(', ')}`,
      `--ignore-certificate-errors-spki-list=${certificate.spkiPin}`,
    ],
    /** The access log as parsed lines: { method, host, path, status, cookie }. */
    async accessLog() {
      const text = await readFile(join(dir, 'access.log'), 'utf8').catch(() => '');
      return text
        .split('\n')
        .filter(Boolean)
        .map((line) => {
          const [method, host, path, status, cookie] = line.split(' ');
          return { method, host, path, status: Number(status), cookie: cookie === 'cookie=yes' };
        });
    },
    errorLog,
    async stop() {
      child.kill('SIGQUIT');
      if ((await Promise.race([exited, sleep(3_000).then(() => null)])) === null) child.kill('SIGKILL');
      await rm(dir, { recursive: true, force: true });
    },
  };
}

function canConnect(port) {
  return new Promise((done) => {
    const socket = tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false, servername: 'probe.example.test' });
    socket.once('secureConnect', () => {
      socket.destroy();
      done(true);
    });
    socket.once('error', () => done(false));
  });
}

/**
 * One HTTP/1.1 request through the proxy over TLS (trusting only its certificate), and the answer
 * as a browser's network stack receives it: the status and every header line, repeats included.
 */
export async function rawHttps(proxy, { host, method, path, headers = {} }) {
  const socket = tlsConnect({ host: '127.0.0.1', port: proxy.port, servername: host, ca: proxy.certificate.pem });
  await new Promise((done, fail) => socket.once('secureConnect', done).once('error', fail));
  const lines = [`${method} ${path} HTTP/1.1`, `Host: ${host}`, 'Connection: close'];
  for (const [name, value] of Object.entries(headers)) lines.push(`${name}: ${value}`);
  // Written, not ended: a TLS close_notify now would make nginx abort the proxied request.
  socket.write(`${lines.join('\r\n')}\r\n\r\n`);
  let received = '';
  socket.setEncoding('latin1');
  for await (const chunk of socket) received += chunk;
  const [head, ...body] = received.split('\r\n\r\n');
  const [statusLine, ...headerLines] = head.split('\r\n');
  return {
    status: Number(statusLine.split(' ')[1]),
    headers: headerLines.map((line) => {
      const at = line.indexOf(':');
      return { name: line.slice(0, at).trim().toLowerCase(), value: line.slice(at + 1).trim() };
    }),
    body: body.join('\r\n\r\n'),
  };
}
