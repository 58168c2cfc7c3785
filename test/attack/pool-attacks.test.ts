/**
 * Attacks on pools, on real sockets: sticky keys from hostile requests (floods of random, huge or
 * many-valued keys, forged tokens on a route without auth), the gateway's affinity cookie (forged,
 * oversized, duplicated, next to the backend's own cookies), the balancers with ties, load bounds
 * and a backend down, health checks against tarpits, endless bodies and https:// backends, passive
 * ejection (client aborts, resets, a share that rounds to none), the process after shutdown, and
 * the status page under load and with markup in the configuration. Tests named `regression:` are bugs these attacks found.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, request, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { type AddressInfo, connect, createServer as createNetServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { type TestContext, test } from 'node:test';
import type { SecureContext } from 'node:tls';
import { chromium } from 'playwright-core';
import type { WebSocket } from 'ws';
import { closedPort, refusingUrl, startEchoBackend } from '../helpers/backends.ts';
import { CHROMIUM } from '../helpers/browser.ts';
import { handshakeHeaders, nextMessage, openClient, rawRequest } from '../helpers/clients.ts';
import { eventually, within } from '../helpers/eventually.ts';
import { FakeClock } from '../helpers/fake-clock.ts';
import { startGateway, type TestGateway } from '../helpers/gateway.ts';
import { rsaKey, startIdentityProvider } from '../helpers/tokens.ts';

const TLS_DIR = resolve(import.meta.dirname, '../fixtures/tls');
const CERT = readFileSync(resolve(TLS_DIR, 'server.pem'));
const KEY = readFileSync(resolve(TLS_DIR, 'server-key.pem'));

interface Reply {
  readonly status: number;
  readonly headers: IncomingMessage['headers'];
  readonly setCookies: string[];
  readonly body: string;
}

function get(
  port: number,
  path: string,
  headers: Record<string, string> = {},
  method = 'GET',
): Promise<Reply> {
  return within(
    new Promise((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path, method, headers, agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          body += chunk;
        });
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            setCookies: res.headers['set-cookie'] ?? [],
            body,
          }),
        );
      });
      req.on('error', reject);
      req.end();
    }),
    `${method} ${path}`,
    10_000,
  );
}

/** A plain HTTP server on 127.0.0.1 closed after the test. */
async function server(
  t: TestContext,
  handler: (req: IncomingMessage, res: ServerResponse) => void,
): Promise<{ url: string; port: number; server: Server; sockets: Set<Socket> }> {
  const srv = createServer(handler);
  const sockets = new Set<Socket>();
  srv.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((listening) => srv.listen(0, '127.0.0.1', listening));
  t.after(
    () =>
      new Promise<void>((closed) => {
        for (const socket of sockets) socket.destroy();
        srv.close(() => closed());
      }),
  );
  const port = (srv.address() as AddressInfo).port;
  return { url: `http://127.0.0.1:${port}`, port, server: srv, sockets };
}

/** Backends that name themselves in their answers. */
async function named(t: TestContext, names: readonly string[]): Promise<string[]> {
  return Promise.all(names.map(async (name) => (await server(t, (_req, res) => res.end(name))).url));
}

interface StatusJson {
  readonly pools: {
    readonly name: string;
    readonly backends: { url: string; state: string; picks: number; failures: number; websockets: number }[];
  }[];
}

/** Sends an upgrade request on a raw socket and resolves once it is written. */
async function rawUpgradeStarted(port: number): Promise<Socket> {
  const socket = connect(port, '127.0.0.1');
  socket.on('error', () => {});
  const lines = Object.entries(handshakeHeaders()).map(([name, value]) => `${name}: ${value}`);
  await new Promise<void>((written) =>
    socket.write(`GET /ws HTTP/1.1\r\n${lines.join('\r\n')}\r\n\r\n`, () => written()),
  );
  return socket;
}

function cookieOf(setCookie: string | undefined): string {
  assert.ok(setCookie, 'a Set-Cookie');
  return setCookie.split(';')[0] ?? '';
}

async function cookieGateway(t: TestContext): Promise<TestGateway> {
  const urls = await named(t, ['a', 'b', 'c']);
  return startGateway(t, {
    routes: { app: { pool: 'app' } },
    pools: { app: { backends: urls, sticky: { from: ['affinityCookie'] } } },
  });
}

test('regression: duplicated affinity cookies: a junk copy sent first does not hide the valid one', async (t) => {
  const gw = await cookieGateway(t);
  const first = await get(gw.port(), '/');
  const cookie = cookieOf(first.setCookies[0]);
  const again = await get(gw.port(), '/', { cookie });
  assert.equal(again.setCookies.length, 0, 'a valid cookie is not replaced');
  assert.equal(again.body, first.body);
  const tossed = await get(gw.port(), '/', { cookie: `wsgate_affinity=junk; ${cookie}` });
  assert.equal(tossed.setCookies.length, 0, 'the valid copy is used, not replaced');
  assert.equal(tossed.body, first.body, 'the session stays on its backend');
});

test('forged, oversized and odd affinity cookie values are ignored and replaced; the gateway keeps serving', async (t) => {
  const gw = await cookieGateway(t);
  const valid = cookieOf((await get(gw.port(), '/')).setCookies[0]).slice('wsgate_affinity='.length);
  const [nonce = '', mac = ''] = valid.split('.');
  const odd = [
    'x'.repeat(12_000),
    `${'A'.repeat(6_000)}.${'B'.repeat(6_000)}`,
    `${nonce}.${mac}x`,
    `${nonce}.${mac.slice(0, -1)}`,
    `${nonce}x.${mac}`,
    `"${valid}"`,
    `${nonce}.${mac.toUpperCase()}`,
    `${nonce}..${mac}`,
    '.',
    '=',
    `${nonce}.${'\u00e9'.repeat(16)}`,
    `${'\u00ff'.repeat(22)}.${mac}`,
  ];
  for (const value of odd) {
    const reply = await get(gw.port(), '/', { cookie: `wsgate_affinity=${value}` });
    assert.equal(reply.status, 200, `answered for ${value.slice(0, 40)}`);
    assert.equal(reply.setCookies.length, 1, `replaced: ${value.slice(0, 40)}`);
    const issued = cookieOf(reply.setCookies[0]);
    assert.match(issued, /^wsgate_affinity=[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{16}$/);
    const kept = await get(gw.port(), '/', { cookie: issued });
    assert.equal(kept.setCookies.length, 0, 'the replacement is accepted');
  }
});

test('the affinity cookie is added next to the backend’s own Set-Cookie headers, on HEAD, 304 and 5xx too', async (t) => {
  const backend = await server(t, (req, res) => {
    res.setHeader('set-cookie', ['app=1; Path=/', 'other=2; HttpOnly']);
    if (req.url === '/304') res.writeHead(304).end();
    else if (req.url === '/500') res.writeHead(500).end('oops');
    else res.end('body');
  });
  const gw = await startGateway(t, {
    routes: { app: { pool: 'app' } },
    pools: { app: { backends: [backend.url], sticky: { from: ['affinityCookie'] } } },
  });
  for (const [path, method, status] of [
    ['/', 'GET', 200],
    ['/', 'HEAD', 200],
    ['/304', 'GET', 304],
    ['/500', 'GET', 500],
  ] as const) {
    const reply = await get(gw.port(), path, {}, method);
    assert.equal(reply.status, status);
    assert.equal(reply.setCookies.length, 3, `${method} ${path}: every cookie kept`);
    assert.deepEqual(reply.setCookies.slice(0, 2), ['app=1; Path=/', 'other=2; HttpOnly']);
    assert.match(reply.setCookies[2] ?? '', /^wsgate_affinity=/);
  }
});

test('the affinity cookie is added to a 101 that sets its own cookie', async (t) => {
  const backend = await startEchoBackend(t);
  backend.wss.on('headers', (headers) => headers.push('Set-Cookie: io=abc; Path=/'));
  const gw = await startGateway(t, {
    routes: { app: { pool: 'app' } },
    pools: { app: { backends: [backend.url], sticky: { from: ['affinityCookie'] } } },
  });
  const response = await rawRequest(gw.port(), { headers: handshakeHeaders() });
  response.socket.destroy();
  await eventually(() => gw.gateway.registry.tunnelCount === 0, 'the tunnel to end');
  assert.equal(response.status, 101);
  const cookies = (response.headers['set-cookie'] ?? '').split(', ');
  assert.equal(cookies.length, 2, response.headers['set-cookie']);
  assert.equal(cookies[0], 'io=abc; Path=/');
  assert.match(cookies[1] ?? '', /^wsgate_affinity=/);
});

test('regression: an affinity cookie path with a separator or a line break is refused at load', async (t) => {
  const urls = await named(t, ['a']);
  for (const path of ['/; Domain=evil.example', '/\r\nX-Injected: 1']) {
    await assert.rejects(
      startGateway(t, {
        routes: { app: { pool: 'app' } },
        pools: { app: { backends: urls, sticky: { from: ['affinityCookie'], cookie: { path } } } },
      }),
      `path ${JSON.stringify(path)} refused`,
    );
  }
});

/** A gateway over `urls` whose pool checks `/healthz` every second (on a fake clock), down and up after one. */
async function checkedGateway(
  t: TestContext,
  urls: string[],
  active: Record<string, unknown>,
  extra: Record<string, unknown> = {},
): Promise<{ gw: TestGateway; clock: FakeClock }> {
  const clock = new FakeClock();
  const gw = await startGateway(
    t,
    {
      routes: { app: { pool: 'app' } },
      pools: {
        app: {
          backends: urls,
          health: {
            active: { path: '/healthz', interval: '1s', unhealthyAfter: 1, healthyAfter: 1, ...active },
          },
          ...extra,
        },
      },
    },
    { clock, baseDir: TLS_DIR },
  );
  return { gw, clock };
}

test('regression: a health endpoint that answers 200 and then stalls its body fails its check at the timeout', async (t) => {
  const backend = await server(t, (req, res) => {
    if (req.url !== '/healthz') return void res.end('app');
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.write('starting…');
    // …and never ends.
  });
  const { gw, clock } = await checkedGateway(t, [backend.url], { timeout: '300ms' });
  const startedAt = performance.now();
  clock.advance(1_100);
  await eventually(
    async () => (await gw.metric('wsgate_health_checks_total')) >= 1,
    'the check to end',
    5_000,
  );
  const elapsed = performance.now() - startedAt;
  assert.ok(elapsed < 2_000, `the check ended within its timeout (${Math.round(elapsed)} ms)`);
  assert.equal(
    await gw.metric('wsgate_health_checks_total', { result: 'failed' }),
    1,
    'a body not finished within the timeout fails the check',
  );
  assert.equal(await gw.metric('wsgate_backend_up', { backend: backend.url }), 0);
});

test('a health endpoint that never answers: each check ends at its timeout, and checks never pile up', async (t) => {
  let checks = 0;
  const backend = await server(t, (req, res) => {
    if (req.url === '/healthz') checks++;
    else res.end('app');
  });
  const { gw, clock } = await checkedGateway(t, [backend.url], { timeout: '200ms', unhealthyAfter: 2 });
  clock.advance(1_100);
  await eventually(() => checks === 1, 'the first check to arrive');
  // Time races on while that check hangs: no second check starts beside it.
  for (let i = 0; i < 20; i++) clock.advance(1_000);
  assert.equal(checks, 1, 'one check in flight at a time');
  await eventually(
    async () => (await gw.metric('wsgate_health_checks_total')) === 1,
    'the check to time out',
  );
  assert.equal(await gw.metric('wsgate_health_checks_total', { result: 'failed' }), 1);
  assert.equal(await gw.metric('wsgate_backend_up', { backend: backend.url }), 1, 'one failure of two');
  clock.advance(1_100);
  await eventually(async () => (await gw.metric('wsgate_health_checks_total')) === 2, 'the second check');
  assert.equal(await gw.metric('wsgate_backend_up', { backend: backend.url }), 0);
  assert.ok(
    backend.sockets.size <= 2,
    `the timed-out checks' connections are closed (${backend.sockets.size} open)`,
  );
  await eventually(() => backend.sockets.size === 0, 'the check connections to close');
});

test('a health endpoint answering an endless body: the check reads at most 64 KiB and passes on its status', async (t) => {
  let written = 0;
  const backend = await server(t, (req, res) => {
    if (req.url !== '/healthz') return void res.end('app');
    res.writeHead(200);
    const chunk = Buffer.alloc(64 * 1024, 0x61);
    const pump = (): void => {
      while (!res.destroyed && written < 512 * 1024 * 1024) {
        written += chunk.length;
        if (!res.write(chunk)) return void res.once('drain', pump);
      }
    };
    res.on('error', () => {});
    pump();
  });
  const { gw, clock } = await checkedGateway(t, [backend.url], { timeout: '2s' });
  clock.advance(1_100);
  await eventually(async () => (await gw.metric('wsgate_health_checks_total')) === 1, 'the check to end');
  assert.equal(await gw.metric('wsgate_health_checks_total', { result: 'ok' }), 1);
  await eventually(() => backend.sockets.size === 0, 'the check connection to be closed');
  assert.ok(written < 16 * 1024 * 1024, `the gateway stopped reading (${written} bytes written)`);
});

async function httpsBackend(
  t: TestContext,
): Promise<{ port: number; checks: () => number; serverNames: string[] }> {
  let checks = 0;
  const serverNames: string[] = [];
  const options = {
    cert: CERT,
    key: KEY,
    // Called for each ClientHello that carries a server name: records what was sent.
    SNICallback: (name: string, done: (error: Error | null, context?: SecureContext) => void) => {
      serverNames.push(name);
      done(null, undefined);
    },
  };
  const srv = createHttpsServer(options, (req, res) => {
    if (req.url === '/healthz') checks++;
    res.end('secure');
  });
  const sockets = new Set<Socket>();
  srv.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  srv.on('tlsClientError', () => {});

  await new Promise<void>((listening) => srv.listen(0, '127.0.0.1', listening));
  t.after(
    () =>
      new Promise<void>((closed) => {
        for (const socket of sockets) socket.destroy();
        srv.close(() => closed());
      }),
  );
  return { port: (srv.address() as AddressInfo).port, checks: () => checks, serverNames };
}

for (const type of ['http', 'tcp'] as const) {
  test(`${type} checks of https backends use the pool's CA (by name and by address), and fail without it`, async (t) => {
    const backend = await httpsBackend(t);
    const urls = [`https://localhost:${backend.port}`, `https://127.0.0.1:${backend.port}`];
    const trusted = await checkedGateway(t, urls, { type }, { tls: { ca: 'ca.pem' } });
    trusted.clock.advance(1_100);
    await eventually(
      async () => (await trusted.gw.metric('wsgate_health_checks_total')) === 2,
      'a round of checks',
    );
    assert.equal(await trusted.gw.metric('wsgate_health_checks_total', { result: 'ok' }), 2);
    if (type === 'http') assert.equal(backend.checks(), 2);
    const untrusted = await checkedGateway(t, urls, { type });
    untrusted.clock.advance(1_100);
    await eventually(
      async () => (await untrusted.gw.metric('wsgate_health_checks_total')) === 2,
      'a round of checks',
    );
    assert.equal(await untrusted.gw.metric('wsgate_health_checks_total', { result: 'failed' }), 2);
  });
}

test('regression: a TCP check of an https:// backend by address sends no IP literal as the TLS server name (RFC 6066)', async (t) => {
  const backend = await httpsBackend(t);
  const { gw, clock } = await checkedGateway(
    t,
    [`https://127.0.0.1:${backend.port}`],
    { type: 'tcp' },
    {
      tls: { ca: 'ca.pem' },
    },
  );
  clock.advance(1_100);
  await eventually(async () => (await gw.metric('wsgate_health_checks_total')) === 1, 'a check');
  assert.equal(await gw.metric('wsgate_health_checks_total', { result: 'ok' }), 1);
  assert.deepEqual(backend.serverNames, [], 'no SNI for an address');
});

test('passive ejection: clients that leave mid-request or mid-handshake are not the backend’s failures', async (t) => {
  const held: IncomingMessage[] = [];
  const upgrades: Socket[] = [];
  const slow = await server(t, (req) => void held.push(req));
  slow.server.on('upgrade', (_req: IncomingMessage, socket: Socket) => {
    socket.on('error', () => {});
    upgrades.push(socket);
  });
  const clock = new FakeClock();
  const gw = await startGateway(
    t,
    {
      routes: { app: { pool: 'app' } },
      pools: {
        app: {
          backends: [slow.url],
          retries: 0,
          health: { passive: { failures: 2, ejectFor: '30s', maxEjectedShare: 1 } },
        },
      },
    },
    { clock },
  );
  for (let i = 0; i < 4; i++) {
    const req = request({ host: '127.0.0.1', port: gw.port(), path: `/poll/${i}`, agent: false });
    req.on('error', () => {});
    req.end();
    await eventually(() => held.length === i + 1, 'the backend to hold the request');
    req.destroy();
    const upgrade = await rawUpgradeStarted(gw.port());
    await eventually(() => upgrades.length === i + 1, 'the backend to hold the upgrade');
    upgrade.destroy();
  }
  await eventually(
    () => gw.gateway.registry.requestCount === 0 && gw.gateway.registry.pendingCount === 0,
    'the gateway to let go',
  );
  assert.equal(await gw.metric('wsgate_backend_ejections_total'), 0, 'no ejection');
  assert.equal(await gw.metric('wsgate_backend_up', { backend: slow.url }), 1);
  const status = JSON.parse((await get(gw.adminPort(), '/status.json')).body) as StatusJson;
  assert.equal(status.pools[0]?.backends[0]?.failures, 0, 'no failure shown on the status page');
});

test('passive ejection: a maxEjectedShare that rounds to no backend ejects none, and every backend is still tried', async (t) => {
  const [live = ''] = await named(t, ['live']);
  const dead = [await refusingUrl(), await refusingUrl()];
  const clock = new FakeClock();
  const gw = await startGateway(
    t,
    {
      routes: { app: { pool: 'app' } },
      pools: {
        app: {
          backends: [...dead, live],
          retries: 2,
          health: { passive: { failures: 1, ejectFor: '30s', maxEjectedShare: 0.3 } },
        },
      },
    },
    { clock },
  );
  for (let i = 0; i < 9; i++) assert.equal((await get(gw.port(), '/')).body, 'live');
  assert.equal(await gw.metric('wsgate_backend_ejections_total'), 0, '30 % of three rounds to none');
  for (const url of dead) {
    assert.equal(await gw.metric('wsgate_backend_up', { backend: url }), 1);
    assert.ok((await gw.metric('wsgate_upstream_connect_failures_total', { backend: url })) >= 3);
  }
});

test('passive ejection: a backend that never answers plain requests within responseTimeout is ejected', async (t) => {
  const [live = ''] = await named(t, ['live']);
  const silent = await server(t, () => {}); // takes requests, never answers
  const clock = new FakeClock();
  const gw = await startGateway(
    t,
    {
      routes: { app: { pool: 'app' } },
      pools: {
        app: {
          backends: [silent.url, live],
          responseTimeout: '150ms',
          health: { passive: { failures: 2, ejectFor: '30s', maxEjectedShare: 0.5 } },
        },
      },
    },
    { clock },
  );
  const statuses: number[] = [];
  for (let i = 0; i < 10; i++) statuses.push((await get(gw.port(), '/')).status);
  assert.equal(
    await gw.metric('wsgate_backend_ejections_total', { backend: silent.url }),
    1,
    `ejected after two response timeouts (statuses: ${statuses.join(' ')})`,
  );
  assert.ok(
    statuses.slice(-6).every((status) => status === 200),
    'then only the live backend serves',
  );
});

test('regression: passive ejection: a backend that resets every plain request it receives is ejected', async (t) => {
  const [live = ''] = await named(t, ['live']);
  const resetter = await server(t, (req) => req.socket.destroy());
  const clock = new FakeClock();
  const gw = await startGateway(
    t,
    {
      routes: { app: { pool: 'app' } },
      pools: {
        app: {
          backends: [resetter.url, live],
          health: { passive: { failures: 2, ejectFor: '30s', maxEjectedShare: 0.5 } },
        },
      },
    },
    { clock },
  );
  const statuses: number[] = [];
  for (let i = 0; i < 12; i++) statuses.push((await get(gw.port(), '/')).status);
  assert.equal(
    await gw.metric('wsgate_backend_ejections_total', { backend: resetter.url }),
    1,
    `ejected after two resets (statuses: ${statuses.join(' ')})`,
  );
  assert.ok(
    statuses.slice(-6).every((status) => status === 200),
    'then only the live backend serves',
  );
});

test('every backend down by its checks: requests still try every backend, in order, and reach the one that serves', async (t) => {
  const live = await startEchoBackend(t, {
    onRequest: (req, res) => {
      if (req.url === '/healthz') res.writeHead(503).end();
      else res.end('live');
    },
  });
  const dead = [`http://127.0.0.1:${await closedPort()}`, `http://127.0.0.1:${await closedPort()}`];
  const urls = [...dead, live.url];
  const { gw, clock } = await checkedGateway(t, urls, {}, { retries: 2 });
  clock.advance(1_100);
  await eventually(async () => (await gw.metric('wsgate_health_checks_total')) === 3, 'a round of checks');
  for (const url of urls) assert.equal(await gw.metric('wsgate_backend_up', { backend: url }), 0);
  for (let i = 0; i < 6; i++) assert.equal((await get(gw.port(), `/${i}`)).body, 'live');
  const ws = await openClient(gw.wsUrl('/ws'));
  ws.send('up?');
  assert.equal((await nextMessage(ws)).data.toString(), 'up?', 'the WebSocket reaches it too');
  ws.close();
  await eventually(() => gw.gateway.registry.tunnelCount === 0, 'the tunnel to end');
});

/** Runs `script` (an ES module) in a new Node process; resolves with its output and when it exited. */
function runScript(
  t: TestContext,
  script: string,
  env: Record<string, string>,
): Promise<{ code: number | null; output: string; exitedMsAfterShutdown: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'wsgate-pool-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'run.ts');
  writeFileSync(file, script);
  const child = spawn(process.execPath, [file], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.after(() => child.kill('SIGKILL'));
  let output = '';
  let shutdownAt = 0;
  const onData = (chunk: Buffer): void => {
    output += chunk.toString();
    if (shutdownAt === 0 && output.includes('SHUTDOWN RESOLVED')) shutdownAt = performance.now();
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  return within(
    once(child, 'exit').then(([code]) => ({
      code: code as number | null,
      output,
      exitedMsAfterShutdown: shutdownAt === 0 ? Number.NaN : performance.now() - shutdownAt,
    })),
    'the gateway process to exit by itself',
    40_000,
  );
}

const SRC = resolve(import.meta.dirname, '../../src');

/** A script that starts a gateway with checks against `checked` (HTTP) and `tls` (TCP), a refused request ejecting `dead`, then shuts it down. */
function gatewayScript(checked: string, tls: string, dead: string): string {
  return `
import { parseConfigText } from ${JSON.stringify(join(SRC, 'config/load.ts'))};
import { createGateway } from ${JSON.stringify(join(SRC, 'gateway.ts'))};
import { createLogger } from ${JSON.stringify(join(SRC, 'observability/logger.ts'))};
const config = parseConfigText(JSON.stringify({
  admin: { address: '127.0.0.1', port: 0 },
  listeners: { public: { address: '127.0.0.1', port: 0 } },
  shutdown: { drainDelay: '0s', closeSpread: '0s', drainTimeout: '2s' },
  routes: { app: { pool: 'app' }, tls: { pool: 'tls', path: '/tls' }, other: { pool: 'other', path: '/other' } },
  pools: {
    app: {
      backends: ['${checked}'],
      health: { active: { path: '/healthz', interval: '20ms', timeout: '8s' } },
    },
    tls: {
      backends: ['${tls}'],
      health: { active: { type: 'tcp', interval: '20ms', timeout: '8s' } },
    },
    other: {
      backends: ['${dead}'],
      health: { passive: { failures: 1, ejectFor: '60s', maxEjectedShare: 1 } },
    },
  },
}), { file: 'test.yaml', baseDir: process.cwd(), env: {} });
const gateway = createGateway(config, { log: createLogger({ level: 'silent', format: 'json' }), version: 'test' });
await gateway.start();
// A refused request ejects the dead backend: its ejection timer is armed.
const refused = await fetch('http://127.0.0.1:' + gateway.addresses().public.port + '/other');
console.log('REFUSED', refused.status);
// Checks are running (some in flight) once a few have been counted.
const checks = gateway.metrics.registry.getSingleMetric('wsgate_health_checks_total');
for (;;) {
  const counted = (await checks.get()).values.reduce((sum, sample) => sum + sample.value, 0);
  if (counted >= 4) break;
  await new Promise((resolve) => setTimeout(resolve, 10));
}
await gateway.shutdown();
console.log('SHUTDOWN RESOLVED');
`;
}

test('after shutdown() (checks running, an ejection timer armed), the process exits by itself at once', async (t) => {
  const checked = await server(t, (_req, res) => res.end('ok'));
  const tls = await httpsBackend(t);
  const dead = `http://127.0.0.1:${await closedPort()}`;
  const result = await runScript(t, gatewayScript(checked.url, `https://localhost:${tls.port}`, dead), {});
  assert.match(result.output, /REFUSED 502/);
  assert.match(result.output, /SHUTDOWN RESOLVED/);
  assert.equal(result.code, 0, result.output);
  assert.ok(
    result.exitedMsAfterShutdown < 3_000,
    `the process exited ${Math.round(result.exitedMsAfterShutdown)} ms after shutdown() resolved`,
  );
});

test('regression: after shutdown() with checks in flight against tarpits, nothing keeps the process alive', async (t) => {
  // Accepts connections and never writes a byte: an HTTP check waits for a status line, a TCP
  // check of an https:// backend for the TLS handshake.
  const held = new Set<Socket>();
  const tarpit = createNetServer((socket) => {
    held.add(socket);
    socket.on('error', () => {});
  });
  await new Promise<void>((listening) => tarpit.listen(0, '127.0.0.1', listening));
  t.after(() => {
    for (const socket of held) socket.destroy();
    tarpit.close();
  });
  const port = (tarpit.address() as AddressInfo).port;
  const dead = `http://127.0.0.1:${await closedPort()}`;
  const script = gatewayScript(`http://127.0.0.1:${port}`, `https://localhost:${port}`, dead);
  const result = await runScript(t, script, {});
  assert.match(result.output, /REFUSED 502/);
  assert.match(result.output, /SHUTDOWN RESOLVED/);
  assert.equal(result.code, 0, result.output);
  assert.ok(held.size >= 2, 'both checks were in flight at shutdown');
  assert.ok(
    result.exitedMsAfterShutdown < 3_000,
    `the process exited ${Math.round(result.exitedMsAfterShutdown)} ms after shutdown() resolved (checks time out at 8 s)`,
  );
});

test('/status.json stays consistent under concurrent traffic, and the page writes markup in the config as text', async (t) => {
  const urls = await named(t, ['a', 'b', 'c']);
  const markup = '/x"><img src=x onerror="window.pwned=1"><script>window.pwned=2</script>';
  const gw = await startGateway(t, {
    routes: { app: { pool: 'app' }, odd: { pool: 'app', path: markup } },
    pools: { app: { backends: urls, sticky: { from: [{ header: 'X-Key' }] }, balance: 'least_connections' } },
  });
  const requests = Array.from({ length: 150 }, (_, i) =>
    get(gw.port(), `/r/${i}`, i % 2 === 0 ? { 'X-Key': `k${i}` } : {}),
  );
  const reports = Array.from({ length: 40 }, () => get(gw.adminPort(), '/status.json'));
  const [served, seen] = await Promise.all([Promise.all(requests), Promise.all(reports)]);
  assert.ok(served.every((reply) => reply.status === 200));
  for (const report of seen) {
    assert.equal(report.status, 200);
    assert.match(String(report.headers['content-type']), /^application\/json/);
    JSON.parse(report.body);
  }
  const status = JSON.parse((await get(gw.adminPort(), '/status.json')).body) as StatusJson & {
    routes: { name: string; path: string }[];
  };
  const picks = status.pools[0]?.backends.reduce((sum, backend) => sum + backend.picks, 0);
  assert.equal(picks, 150, 'every request counted once');
  assert.equal(status.routes.find((route) => route.name === 'odd')?.path, markup);
  const page = await get(gw.adminPort(), '/status');
  assert.match(String(page.headers['content-security-policy']), /script-src 'unsafe-inline'/);
  assert.doesNotMatch(page.body, /innerHTML|outerHTML|insertAdjacentHTML|document\.write/);
  if (CHROMIUM === undefined) {
    t.diagnostic('Chromium is not installed: the browser part is skipped');
    return;
  }
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu'],
  });
  t.after(() => browser.close());
  const tab = await browser.newPage();
  await tab.goto(`http://127.0.0.1:${gw.adminPort()}/status`);
  await tab.waitForSelector('#routes tbody tr');
  const paths = await tab.$$eval('#routes tbody tr td:nth-child(3)', (cells) =>
    cells.map((cell) => cell.textContent),
  );
  assert.ok(paths.includes(markup), 'the path is shown as text');
  assert.equal(await tab.evaluate(() => (globalThis as { pwned?: number }).pwned), undefined);
  assert.equal(await tab.$$eval('img', (images) => images.length), 0, 'no element made from the config');
  await browser.close();
});

/** Opens `count` WebSockets one after another and returns them (closed by the test). */
async function openMany(
  gw: TestGateway,
  count: number,
  headers: Record<string, string> = {},
): Promise<WebSocket[]> {
  const sockets: WebSocket[] = [];
  for (let i = 0; i < count; i++) sockets.push(await openClient(gw.wsUrl('/ws'), undefined, { headers }));
  return sockets;
}

async function closeAll(gw: TestGateway, sockets: readonly WebSocket[]): Promise<void> {
  for (const ws of sockets) ws.close();
  await eventually(() => gw.gateway.registry.tunnelCount === 0, 'the tunnels to end');
}

test('least_connections with equal weights: ties are broken at random and WebSockets spread evenly', async (t) => {
  const backends = await Promise.all([0, 1, 2].map(() => startEchoBackend(t)));
  const gw = await startGateway(t, {
    routes: { app: { pool: 'app' } },
    pools: { app: { backends: backends.map((backend) => backend.url), balance: 'least_connections' } },
  });
  const sockets = await openMany(gw, 30);
  const counts = backends.map((backend) => backend.sockets.length);
  assert.ok(
    counts.every((count) => count >= 7 && count <= 13),
    `the power of two choices keeps every backend near 10 (${counts.join(', ')})`,
  );
  await closeAll(gw, sockets);
});

test('loadFactor bounds a hot key across backends, and with one backend never refuses', async (t) => {
  const one = await startEchoBackend(t);
  const single = await startGateway(t, {
    routes: { app: { pool: 'app' } },
    pools: { app: { backends: [one.url], sticky: { from: [{ header: 'X-Key' }], loadFactor: 1.01 } } },
  });
  const alone = await openMany(single, 15, { 'X-Key': 'hot' });
  assert.equal(one.sockets.length, 15, 'every WebSocket on the only backend');
  await closeAll(single, alone);
  const three = await Promise.all([0, 1, 2].map(() => startEchoBackend(t)));
  const bounded = await startGateway(t, {
    routes: { app: { pool: 'app' } },
    pools: {
      app: {
        backends: three.map((backend) => backend.url),
        sticky: { from: [{ header: 'X-Key' }], loadFactor: 1.25 },
      },
    },
  });
  const hot = await openMany(bounded, 30, { 'X-Key': 'hot' });
  const counts = three.map((backend) => backend.sockets.length);
  assert.ok(Math.max(...counts) <= Math.ceil((1.25 * 30) / 3), `bounded: ${counts.join(', ')}`);
  await closeAll(bounded, hot);
});

test('a sticky key from a token claim, on a route of the pool without auth: no crash, an unverified token is never the key', async (t) => {
  const backends = await Promise.all(
    ['a', 'b', 'c'].map((name) =>
      startEchoBackend(t, {
        onRequest: (_req, res) => res.end(name),
        onConnection: (socket) => socket.on('message', () => socket.send(name)),
      }),
    ),
  );
  // One route to the pool checks tokens (so the claim source is allowed); the other does not.
  const idp = await startIdentityProvider(t, [rsaKey('k1')]);
  const gw = await startGateway(t, {
    keySets: { idp: { jwksUrl: idp.url } },
    routes: {
      app: { pool: 'app' },
      secure: { pool: 'app', path: '/secure', auth: { keySet: 'idp', algorithms: ['RS256'] } },
    },
    pools: {
      app: {
        backends: backends.map((backend) => backend.url),
        sticky: { from: [{ claim: 'sub' }, 'clientAddress'] },
      },
    },
  });
  const forged = (sub: string): string => {
    const part = (value: object): string => Buffer.from(JSON.stringify(value)).toString('base64url');
    return `${part({ alg: 'none', typ: 'JWT' })}.${part({ sub })}.`;
  };
  const bodies = new Set<string>();
  for (let i = 0; i < 12; i++) {
    const reply = await get(gw.port(), `/?access_token=${forged(`u${i}`)}`, {
      authorization: `Bearer ${forged(`user-${i}`)}`,
    });
    assert.equal(reply.status, 200);
    bodies.add(reply.body);
    const ws = await openClient(gw.wsUrl('/ws'), undefined, {
      headers: { authorization: `Bearer ${forged(`user-${i}`)}` },
    });
    ws.send('who');
    bodies.add((await nextMessage(ws)).data.toString());
    ws.close();
  }
  assert.equal(bodies.size, 1, 'every request on the client address’s backend');
  await eventually(() => gw.gateway.registry.tunnelCount === 0, 'the tunnels to end');
});

test('a flood of requests with random, large and many-valued sticky keys is served and spread', async (t) => {
  const urls = await named(t, ['a', 'b', 'c']);
  const gw = await startGateway(t, {
    routes: { app: { pool: 'app' } },
    pools: { app: { backends: urls, sticky: { from: [{ header: 'X-Key' }, { query: 'k' }, { path: 3 }] } } },
  });
  const random = (length: number): string => randomBytes(length).toString('base64url').slice(0, length);
  const replies = await Promise.all(
    Array.from({ length: 300 }, (_, i) => {
      if (i % 3 === 0) return get(gw.port(), '/', { 'X-Key': random(8_000) });
      if (i % 3 === 1) return get(gw.port(), `/?${'a=1&'.repeat(3_000)}k=${random(16)}`);
      return get(gw.port(), `/x/y/${random(4_000)}`);
    }),
  );
  assert.ok(replies.every((reply) => reply.status === 200));
  assert.deepEqual(
    new Set(replies.map((reply) => reply.body)),
    new Set(['a', 'b', 'c']),
    'random keys spread',
  );
  const tooBig = await get(gw.port(), '/', { 'X-Key': 'k'.repeat(20_000) });
  assert.equal(tooBig.status, 431, 'a head over maxHeaderSize is refused before any hashing');
  assert.equal((await get(gw.port(), '/', { 'X-Key': 'after' })).status, 200);
});

for (const balance of ['round_robin', 'least_connections'] as const) {
  test(`regression: ${balance} with one of three backends down: the two that are up share its traffic evenly`, async (t) => {
    const served = { a: 0, b: 0, c: 0 };
    const urls = await Promise.all(
      (['a', 'b', 'c'] as const).map(
        async (name) =>
          (
            await server(t, (req, res) => {
              if (req.url === '/healthz') return void res.writeHead(name === 'b' ? 503 : 200).end();
              served[name]++;
              res.end(name);
            })
          ).url,
      ),
    );
    const { gw, clock } = await checkedGateway(t, urls, {}, { balance });
    clock.advance(1_100);
    await eventually(async () => (await gw.metric('wsgate_health_checks_total')) === 3, 'a round of checks');
    assert.equal(await gw.metric('wsgate_backend_up', { backend: urls[1] ?? '' }), 0);
    for (let i = 0; i < 300; i++) await get(gw.port(), `/${i}`);
    assert.equal(served.b, 0);
    // Even: 150 each give or take a few tens; the bug gives one of them twice the other's share.
    assert.ok(Math.abs(served.a - served.c) <= 60, `a and c share evenly (a ${served.a}, c ${served.c})`);
  });
}

test('regression: an HTTP check path that starts with "//" still probes the backend, not another host', async (t) => {
  let elsewhere = 0;
  const other = await server(t, (_req, res) => {
    elsewhere++;
    res.end('ok');
  });
  const backend = await server(t, (_req, res) => res.writeHead(503).end());
  const { gw, clock } = await checkedGateway(t, [backend.url], { path: `//127.0.0.1:${other.port}/healthz` });
  clock.advance(1_100);
  await eventually(async () => (await gw.metric('wsgate_health_checks_total')) === 1, 'a check');
  assert.equal(elsewhere, 0, 'no request to another host');
  assert.equal(
    await gw.metric('wsgate_backend_up', { backend: backend.url }),
    0,
    'the failing backend is down',
  );
});
