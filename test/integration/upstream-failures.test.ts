/**
 * What a client gets when the backend side of an upgrade goes wrong: a refused backend is skipped
 * for the next candidate (and counted), every candidate refused is 502, `retries: 0` stops after
 * one, a backend that never answers is 504 (handshake timeout), a TLS backend that never finishes
 * connecting is 504 (connect timeout), a backend's 4xx is relayed with its headers and body (and
 * cut at `handshakeTimeout` when that body stalls), any
 * other answer or a dropped connection is 502, and failures after bytes were sent are not retried.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { type AddressInfo, connect, createServer, type Server, type Socket } from 'node:net';
import { type TestContext, test } from 'node:test';
import { refusingUrl, refusingUrls, startEchoBackend, startHttpBackend } from '../helpers/backends.ts';
import { handshakeHeaders, nextMessage, openClient, rawRequest } from '../helpers/clients.ts';
import { eventually, within } from '../helpers/eventually.ts';
import { startGateway, type TestGateway } from '../helpers/gateway.ts';
import { assertElapsedAbout } from '../helpers/timing.ts';

interface FullResponse {
  readonly status: number;
  readonly statusLine: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
}

/** Sends a valid handshake and reads the response until the gateway closes the connection. */
async function handshake(gw: TestGateway, path = '/'): Promise<FullResponse> {
  const response = await rawRequest(gw.port(), { path, headers: handshakeHeaders() });
  const chunks = [response.rest];
  const body = await within(
    new Promise<string>((resolve) => {
      response.socket.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.socket.once('close', () => resolve(Buffer.concat(chunks).toString('utf8')));
      response.socket.resume();
    }),
    'the gateway to close the connection',
  );
  return { status: response.status, statusLine: response.statusLine, headers: response.headers, body };
}

function gatewayWith(t: TestContext, backends: string[], pool: Record<string, unknown> = {}) {
  return startGateway(t, {
    routes: { main: { pool: 'main' } },
    pools: { main: { backends, ...pool } },
  });
}

/** A TCP server that accepts connections and never writes a byte; it records its sockets. */
async function startSilentServer(t: TestContext): Promise<{ port: number; sockets: Socket[] }> {
  const sockets: Socket[] = [];
  const server: Server = createServer((socket) => {
    socket.on('error', () => {});
    sockets.push(socket);
  });
  server.listen(0, '127.0.0.1');
  await within(once(server, 'listening'), 'silent server listening');
  t.after(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return { port: (server.address() as AddressInfo).port, sockets };
}

/** Asserts a gateway error answer; `what` names the request in every failure message. */
function assertGatewayError(
  response: FullResponse,
  status: number,
  text: string,
  what = 'the request',
): void {
  assert.equal(response.statusLine, `HTTP/1.1 ${status} ${text}`, `${what}: status line`);
  assert.equal(response.body, `${text}\n`, `${what}: the body says only the status text`);
  assert.equal(response.headers.connection, 'close', `${what}: Connection`);
}

test('a refused backend is skipped for the next candidate, which upgrades', async (t) => {
  const dead = await refusingUrl();
  const live = await startEchoBackend(t);
  const gw = await gatewayWith(t, [dead, live.url]);
  const ws = await openClient(gw.wsUrl('/retry'));
  const reply = nextMessage(ws);
  ws.send('after a retry');
  assert.equal((await reply).data.toString(), 'after a retry');
  ws.close();
  assert.equal(live.upgrades.length, 1);
  assert.equal(
    await gw.metric('wsgate_upstream_connect_failures_total', {
      pool: 'main',
      backend: dead,
      code: 'UPSTREAM_CONNECT_FAILED',
    }),
    1,
  );
  assert.equal(await gw.metric('wsgate_upstream_connect_failures_total', { backend: live.url }), 0);
  assert.equal(await gw.metric('wsgate_upgrades_total', { code: 'UPGRADED', route: 'main' }), 1);
});

test('regression: refused backends of one pool never share a released port', async () => {
  // Ports released one after the other may be given out again at once: a pool listing the same
  // backend twice is a configuration error, and a test's live backend could take a dead one's port.
  const urls = await refusingUrls(32);
  assert.equal(new Set(urls).size, 32);
  for (const url of urls) assert.match(url, /^http:\/\/127\.0\.0\.77:\d+$/);
});

test('every candidate refused is 502 UPSTREAM_CONNECT_FAILED', async (t) => {
  const [first = '', second = ''] = await refusingUrls(2);
  const gw = await gatewayWith(t, [first, second]);
  assertGatewayError(await handshake(gw), 502, 'Bad Gateway');
  assert.equal(await gw.metric('wsgate_upgrades_total', { code: 'UPSTREAM_CONNECT_FAILED' }), 1);
  assert.equal(await gw.metric('wsgate_upstream_connect_failures_total', { backend: first }), 1);
  assert.equal(await gw.metric('wsgate_upstream_connect_failures_total', { backend: second }), 1);
});

test('with retries: 0 a refused backend is not followed by a second attempt', async (t) => {
  const dead = await refusingUrl();
  const live = await startEchoBackend(t);
  const gw = await gatewayWith(t, [dead, live.url], { retries: 0 });
  assertGatewayError(await handshake(gw), 502, 'Bad Gateway');
  assert.equal(live.connections(), 0, 'the second backend was never contacted');
  assert.equal(await gw.metric('wsgate_upstream_connect_failures_total'), 1);
  assert.equal(await gw.metric('wsgate_upgrades_total', { code: 'UPSTREAM_CONNECT_FAILED' }), 1);
});

test('a backend that never answers the upgrade is 504 and is not retried elsewhere', async (t) => {
  const silent = await startSilentServer(t);
  const live = await startEchoBackend(t);
  const silentUrl = `http://127.0.0.1:${silent.port}`;
  const gw = await gatewayWith(t, [silentUrl, live.url], { handshakeTimeout: '300ms' });
  // Taken before the client sends, so never later than the backend connect that starts the timer.
  const startedAt = performance.now();
  const response = await handshake(gw);
  assertElapsedAbout(startedAt, 300, 'the 504 for a silent backend');
  assertGatewayError(response, 504, 'Gateway Timeout');
  assert.equal(silent.sockets.length, 1);
  assert.equal(live.connections(), 0, 'the request was sent, so no other backend is tried');
  assert.equal(await gw.metric('wsgate_upgrades_total', { code: 'UPSTREAM_HANDSHAKE_TIMEOUT' }), 1);
  assert.equal(
    await gw.metric('wsgate_upstream_connect_failures_total', {
      backend: silentUrl,
      code: 'UPSTREAM_HANDSHAKE_TIMEOUT',
    }),
    1,
  );
  const [backendSide] = silent.sockets;
  assert.ok(backendSide);
  if (!backendSide.destroyed) {
    backendSide.resume();
    await within(once(backendSide, 'close'), 'the gateway closing its backend connection');
  }
});

test('a handshake timeout longer than the connect timeout is still counted from the connect', async (t) => {
  // One timer serves both deadlines: when the connect timeout passes on a connected attempt, the
  // timer waits out the rest of the handshake timeout instead of failing the attempt.
  const silent = await startSilentServer(t);
  const gw = await gatewayWith(t, [`http://127.0.0.1:${silent.port}`], {
    connectTimeout: '200ms',
    handshakeTimeout: '900ms',
  });
  const startedAt = performance.now();
  const response = await handshake(gw);
  assertElapsedAbout(startedAt, 900, 'the 504 for a silent backend');
  assertGatewayError(response, 504, 'Gateway Timeout');
  assert.equal(await gw.metric('wsgate_upgrades_total', { code: 'UPSTREAM_HANDSHAKE_TIMEOUT' }), 1);
  assert.equal(await gw.metric('wsgate_upgrades_total', { code: 'UPSTREAM_CONNECT_TIMEOUT' }), 0);
});

test('a TLS backend that never completes its handshake is 504 UPSTREAM_CONNECT_TIMEOUT', async (t) => {
  // Also the regression test for sending an IP literal as the TLS server name, which RFC 6066 §3
  // forbids and Node reports with a DEP0123 warning when the connection starts.
  const warnings: string[] = [];
  const onWarning = (warning: Error & { code?: string }): void =>
    void warnings.push(warning.code ?? warning.name);
  process.on('warning', onWarning);
  t.after(() => process.off('warning', onWarning));
  const silent = await startSilentServer(t);
  const gw = await gatewayWith(t, [`https://127.0.0.1:${silent.port}`], { connectTimeout: '300ms' });
  const startedAt = performance.now();
  const response = await handshake(gw);
  assertElapsedAbout(startedAt, 300, 'the 504 for a TLS backend that never completes its handshake');
  assertGatewayError(response, 504, 'Gateway Timeout');
  assert.equal(silent.sockets.length, 1, 'the TCP connection was made');
  assert.equal(await gw.metric('wsgate_upgrades_total', { code: 'UPSTREAM_CONNECT_TIMEOUT' }), 1);
  assert.equal(
    await gw.metric('wsgate_upstream_connect_failures_total', { code: 'UPSTREAM_CONNECT_TIMEOUT' }),
    1,
  );
  assert.equal(
    gw.logs.some((line) => line.msg === 'websocket rejected' && line.code === 'UPSTREAM_CONNECT_TIMEOUT'),
    true,
  );
  assert.deepEqual(warnings, [], 'no IP address was sent as the server name');
});

test("a backend's 401 reaches the client with its WWW-Authenticate header and body", async (t) => {
  const backend = await startHttpBackend(t, (_req, res) => {
    res.writeHead(401, {
      'WWW-Authenticate': 'Bearer realm="chat", error="invalid_token"',
      'Content-Type': 'text/plain',
      'X-Request-Id': 'r-42',
    });
    res.end('token expired, log in again');
  });
  const gw = await gatewayWith(t, [backend.url]);
  const response = await handshake(gw, '/private');
  assert.equal(response.statusLine, 'HTTP/1.1 401 Unauthorized');
  assert.equal(response.headers['www-authenticate'], 'Bearer realm="chat", error="invalid_token"');
  assert.equal(response.headers['x-request-id'], 'r-42');
  assert.equal(response.headers['content-type'], 'text/plain');
  assert.equal(response.headers.connection, 'close');
  assert.equal(response.body, 'token expired, log in again');
  assert.equal(backend.requests.length, 1);
  assert.equal(backend.requests[0]?.url, '/private');
  assert.equal(await gw.metric('wsgate_upgrades_total', { code: 'UPSTREAM_REJECTED' }), 1);
});

test('a backend answering an upgrade with 500 or 200 is 502 UPSTREAM_BAD_RESPONSE', async (t) => {
  for (const status of [500, 200]) {
    const backend = await startHttpBackend(t, (_req, res) => {
      res.writeHead(status, { 'X-Leak': 'internal detail' });
      res.end('stack trace here');
    });
    const gw = await gatewayWith(t, [backend.url]);
    const response = await handshake(gw);
    assertGatewayError(response, 502, 'Bad Gateway', `a backend answering ${status}`);
    assert.equal(response.headers['x-leak'], undefined, `nothing of the ${status} is relayed`);
    assert.equal(backend.requests.length, 1, `a backend answering ${status}: one request, not retried`);
    assert.equal(
      await gw.metric('wsgate_upgrades_total', { code: 'UPSTREAM_BAD_RESPONSE' }),
      1,
      `a backend answering ${status}: counted as UPSTREAM_BAD_RESPONSE`,
    );
  }
});

test('a backend that drops the connection before answering is 502 and is not retried', async (t) => {
  const closer = await startHttpBackend(
    t,
    (_req, res) => res.end(),
    (_req, socket) => socket.destroy(),
  );
  const live = await startEchoBackend(t);
  const gw = await gatewayWith(t, [closer.url, live.url]);
  assertGatewayError(await handshake(gw), 502, 'Bad Gateway');
  assert.equal(closer.requests.length, 1);
  assert.equal(live.connections(), 0, 'the request was sent, so no other backend is tried');
  assert.equal(await gw.metric('wsgate_upgrades_total', { code: 'UPSTREAM_BAD_RESPONSE' }), 1);
});

test('a client that leaves while the backend is silent releases the backend connection', async (t) => {
  const silent = await startSilentServer(t);
  const gw = await gatewayWith(t, [`http://127.0.0.1:${silent.port}`], { handshakeTimeout: '30s' });
  const client = connect(gw.port(), '127.0.0.1');
  client.on('error', () => {});
  const lines = Object.entries(handshakeHeaders()).map(([name, value]) => `${name}: ${value}`);
  client.write(`GET / HTTP/1.1\r\n${lines.join('\r\n')}\r\n\r\n`);
  await eventually(() => silent.sockets.length === 1, 'the backend connection');
  assert.equal(gw.gateway.registry.pendingCount, 1);
  const [backendSide] = silent.sockets;
  assert.ok(backendSide);
  backendSide.resume();
  const backendClosed = within(once(backendSide, 'close'), 'the backend connection to close');
  client.destroy();
  await backendClosed;
  await eventually(() => gw.gateway.registry.pendingCount === 0, 'no pending handshake');
  assert.equal(await gw.metric('wsgate_upgrades_total', { code: 'CLIENT_GONE' }), 1);
  assert.equal(await gw.metric('wsgate_upstream_connect_failures_total'), 0, 'not blamed on the backend');
});

test("a backend's 4xx whose body stalls is cut at handshakeTimeout: both sides closed, nothing pending", async (t) => {
  let backendClosed = false;
  const backend = await startHttpBackend(
    t,
    (_req, res) => res.end(),
    (_req, socket) => {
      socket.once('end', () => {
        backendClosed = true;
      });
      socket.resume();
      socket.write('HTTP/1.1 403 Forbidden\r\nContent-Length: 100\r\n\r\nabc');
    },
  );
  const gw = await gatewayWith(t, [backend.url], { handshakeTimeout: '300ms' });
  const response = await rawRequest(gw.port(), { headers: handshakeHeaders() });
  // The gateway arms its deadline as it starts relaying, just before the head reaches the client.
  const relayedAt = performance.now();
  assert.equal(response.status, 403);
  await within(
    new Promise<void>((resolve) => {
      response.socket.once('close', resolve);
      response.socket.resume();
    }),
    'the gateway to close the client connection',
  );
  assertElapsedAbout(relayedAt, 300, 'the client connection cut under a stalled 4xx body');
  await eventually(() => gw.gateway.registry.pendingCount === 0, 'no pending handshake left');
  await eventually(() => backendClosed, 'the gateway to close the backend connection');
});
