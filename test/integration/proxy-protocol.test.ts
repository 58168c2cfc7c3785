/**
 * Listeners behind a layer-4 load balancer (`proxyProtocol`), on real sockets: the client a v1 or
 * v2 header reports (IPv4, IPv6) is the peer everything after sees: X-Forwarded-For on upgrades
 * and plain requests, the access log, the per-client admission limit; a v2 LOCAL header keeps the
 * socket's own peer; a header split into single bytes works, also before a TLS handshake. A
 * connection without a valid header, with a header of the wrong version, from a peer outside
 * `proxyProtocolPeers`, or with a header that stalls past `handshakeTimeout` is closed, counted by
 * reason, and never reaches a backend.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { resolve } from 'node:path';
import { type TestContext, test } from 'node:test';
import { type EchoBackend, startEchoBackend } from '../helpers/backends.ts';
import { handshakeLines, nextMessage, openClient } from '../helpers/clients.ts';
import { eventually, within } from '../helpers/eventually.ts';
import { startGateway, type TestGateway } from '../helpers/gateway.ts';
import {
  proxiedSocket,
  proxiedTlsSocket,
  readUntilClosed,
  v1Header,
  v2Header,
} from '../helpers/proxy-protocol.ts';

const TLS_DIR = resolve(import.meta.dirname, '../fixtures/tls');
const CA = readFileSync(resolve(TLS_DIR, 'ca.pem'));

/** A backend that echoes WebSockets and answers plain requests with their X-Forwarded-For. */
function forwardedBackend(t: TestContext): Promise<EchoBackend> {
  return startEchoBackend(t, {
    onRequest: (req, res) => res.end(`xff=${req.headers['x-forwarded-for']}`),
  });
}

function proxyGateway(
  t: TestContext,
  backend: EchoBackend,
  listener: Record<string, unknown> = {},
  extra: Record<string, unknown> = {},
): Promise<TestGateway> {
  return startGateway(
    t,
    {
      listeners: { public: { proxyProtocol: 'any', handshakeTimeout: '3s', ...listener } },
      routes: { echo: { pool: 'echo' } },
      pools: { echo: { backends: [backend.url] } },
      ...extra,
    },
    { baseDir: TLS_DIR },
  );
}

/** A WebSocket whose connection starts with `header`. */
function openProxied(gw: TestGateway, header: Buffer, path = '/'): ReturnType<typeof openClient> {
  return openClient(gw.wsUrl(path), undefined, { createConnection: () => proxiedSocket(gw.port(), header) });
}

async function assertEchoes(ws: Awaited<ReturnType<typeof openClient>>, text: string): Promise<void> {
  ws.send(text);
  assert.equal((await nextMessage(ws)).data.toString(), text);
}

const GET = 'GET /plain HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n';

test("a v1 header's client reaches the backend as X-Forwarded-For and the access log", async (t) => {
  const backend = await forwardedBackend(t);
  const gw = await proxyGateway(t, backend);
  const ws = await openProxied(gw, v1Header('198.51.100.7', 51234), '/v1');
  await assertEchoes(ws, 'through a load balancer');
  assert.equal(backend.upgrades[0]?.headers['x-forwarded-for'], '198.51.100.7');
  ws.close();
  await eventually(
    () => gw.logs.some((line) => line.msg === 'websocket closed' && line.client === '198.51.100.7'),
    'the access line with the reported client',
  );
  const reply = await readUntilClosed(proxiedSocket(gw.port(), v1Header('2001:db8::9', 1)), GET);
  assert.match(reply, /^HTTP\/1\.1 200 /);
  assert.match(reply, /xff=2001:db8::9$/);
});

test('v2 headers (IPv4 with TLVs, IPv6) report their client; LOCAL keeps the socket peer', async (t) => {
  const backend = await forwardedBackend(t);
  const gw = await proxyGateway(t, backend, { proxyProtocol: 'v2' });
  const tlvs = Buffer.from([0xea, 0x00, 0x05, 0x01, 0x76, 0x70, 0x63, 0x65]);
  const ws = await openProxied(gw, v2Header({ address: '203.0.113.9', port: 7, tlvs }));
  await assertEchoes(ws, 'v2');
  assert.equal(backend.upgrades[0]?.headers['x-forwarded-for'], '203.0.113.9');
  ws.close();

  const ipv6 = await readUntilClosed(
    proxiedSocket(gw.port(), v2Header({ address: '2001:db8::42', port: 1 })),
    GET,
  );
  assert.match(ipv6, /xff=2001:db8::42$/);
  const local = v2Header({ command: 'local', address: '192.0.2.1', port: 9 });
  assert.match(await readUntilClosed(proxiedSocket(gw.port(), local), GET), /xff=127\.0\.0\.1$/);
  assert.equal(await gw.metric('wsgate_proxy_protocol_errors_total'), 0);
});

test('a header split into single bytes, and the request in the same write as it, both work', async (t) => {
  const backend = await forwardedBackend(t);
  const gw = await proxyGateway(t, backend);
  const socket = connect(gw.port(), '127.0.0.1');
  socket.setNoDelay(true);
  socket.on('error', () => {});
  const closed = readUntilClosed(socket);
  for (const byte of v2Header({ address: '192.0.2.77', port: 4 })) {
    await new Promise<void>((done) => socket.write(Buffer.from([byte]), () => setImmediate(done)));
  }
  socket.write(GET);
  assert.match(await closed, /xff=192\.0\.2\.77$/);
  const together = Buffer.concat([v1Header('192.0.2.78', 5), Buffer.from(GET)]);
  assert.match(await readUntilClosed(proxiedSocket(gw.port(), together)), /xff=192\.0\.2\.78$/);
});

test('the per-client admission limit counts the reported client, not the load balancer', async (t) => {
  const backend = await forwardedBackend(t);
  const gw = await proxyGateway(t, backend, {}, { admission: { perClient: { maxConnections: 1 } } });
  const first = await openProxied(gw, v1Header('198.51.100.1', 1000));
  await assert.rejects(openProxied(gw, v1Header('198.51.100.1', 1001)), /unexpected response 429/);
  const other = await openProxied(gw, v1Header('198.51.100.2', 1000));
  await assertEchoes(other, 'another client');
  assert.equal(await gw.metric('wsgate_upgrades_total', { code: 'CLIENT_CONNECTIONS_EXCEEDED' }), 1);
  first.close();
  other.close();
});

test('a connection without a header is closed and never reaches a backend', async (t) => {
  const backend = await forwardedBackend(t);
  const gw = await proxyGateway(t, backend);
  await assert.rejects(openClient(gw.wsUrl('/direct')));
  const socket = connect(gw.port(), '127.0.0.1');
  socket.on('error', () => {});
  assert.equal(await readUntilClosed(socket, `GET / HTTP/1.1\r\n${handshakeLines()}\r\n`), '');
  assert.equal(
    await gw.metric('wsgate_proxy_protocol_errors_total', { listener: 'public', reason: 'invalid' }),
    2,
  );
  assert.equal(backend.connections(), 0);
  // A TCP health check that sends nothing is no error.
  await readUntilClosed(
    connect(gw.port(), '127.0.0.1').on('connect', function (this: Socket) {
      this.end();
    }),
  );
  assert.equal(await gw.metric('wsgate_proxy_protocol_errors_total'), 2);
  assert.ok(gw.logs.some((line) => line.msg === 'PROXY protocol header refused' && line.level === 'debug'));
});

test('a header of a version the listener does not accept is closed', async (t) => {
  const backend = await forwardedBackend(t);
  const gw = await proxyGateway(t, backend, { proxyProtocol: 'v1' });
  const socket = proxiedSocket(gw.port(), v2Header({ address: '192.0.2.1', port: 1 }));
  assert.equal(await readUntilClosed(socket, GET), '');
  assert.equal(await gw.metric('wsgate_proxy_protocol_errors_total', { reason: 'wrong_version' }), 1);
  assert.equal(backend.connections(), 0);
});

test('a header that stalls is closed after handshakeTimeout', async (t) => {
  const backend = await forwardedBackend(t);
  const gw = await proxyGateway(t, backend, { handshakeTimeout: '300ms' });
  const startedAt = performance.now();
  const socket = proxiedSocket(gw.port(), Buffer.from('PROXY TCP4 192.0.2.1 '));
  assert.equal(await readUntilClosed(socket), '');
  const elapsed = performance.now() - startedAt;
  assert.ok(elapsed >= 250 && elapsed < 3_000, `closed after ${Math.round(elapsed)} ms`);
  assert.equal(await gw.metric('wsgate_proxy_protocol_errors_total', { reason: 'timeout' }), 1);
  // A header cut short by the peer is counted too.
  const cut = proxiedSocket(gw.port(), Buffer.from('PROXY TCP4'));
  cut.end();
  await readUntilClosed(cut);
  await eventually(
    async () => (await gw.metric('wsgate_proxy_protocol_errors_total', { reason: 'incomplete' })) === 1,
    'the cut header to be counted',
  );
  assert.equal(backend.connections(), 0);
});

test('a peer outside proxyProtocolPeers is closed before anything is read', async (t) => {
  const backend = await forwardedBackend(t);
  const gw = await proxyGateway(t, backend, { proxyProtocolPeers: ['10.0.0.0/8'] });
  const socket = proxiedSocket(gw.port(), v1Header('192.0.2.1', 1));
  assert.equal(await readUntilClosed(socket, GET), '');
  assert.equal(await gw.metric('wsgate_proxy_protocol_errors_total', { reason: 'untrusted_peer' }), 1);
  assert.equal(backend.connections(), 0);
});

test('on a TLS listener the header comes before the TLS handshake', async (t) => {
  const backend = await forwardedBackend(t);
  const gw = await proxyGateway(t, backend, {
    proxyProtocol: 'v2',
    tls: { cert: 'server.pem', key: 'server-key.pem' },
  });
  const ws = await openClient(`wss://localhost:${gw.port()}/tls`, undefined, {
    createConnection: () => proxiedTlsSocket(gw.port(), v2Header({ address: '2001:db8::5', port: 3 }), CA),
  });
  await assertEchoes(ws, 'over tls behind a load balancer');
  assert.equal(backend.upgrades[0]?.headers['x-forwarded-for'], '2001:db8::5');
  assert.equal(backend.upgrades[0]?.headers['x-forwarded-proto'], 'https');
  ws.close();
  const tls = proxiedTlsSocket(gw.port(), v2Header({ address: '192.0.2.50', port: 3 }), CA);
  await within(new Promise((done) => tls.once('secureConnect', done)), 'the TLS handshake');
  assert.match(await readUntilClosed(tls, GET), /xff=192\.0\.2\.50$/);
  // A TLS client that sends no header is closed at its ClientHello.
  await assert.rejects(openClient(`wss://localhost:${gw.port()}/`, undefined, { ca: CA }));
  assert.equal(await gw.metric('wsgate_proxy_protocol_errors_total', { reason: 'invalid' }), 1);
});
