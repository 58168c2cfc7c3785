/**
 * TLS on both sides of the gateway, with the fixture CA (test/fixtures/tls) trusted explicitly by
 * every client. Downstream: a TLS listener serves wss:// (echo) and https:// (plain requests reach
 * the backend with X-Forwarded-Proto: https); a client that offers only TLS 1.1, or only TLS 1.2 to
 * a listener with `minVersion: TLSv1.3`, fails its handshake and the gateway keeps serving.
 * Upstream: an https:// backend with a CA-signed certificate is reached for upgrades and plain
 * requests when the pool trusts that CA, and refused (502) when it does not.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { createServer as createHttpsServer, request as httpsRequest } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { resolve } from 'node:path';
import { type TestContext, test } from 'node:test';
import { type ConnectionOptions, type SecureVersion, connect as tlsConnect } from 'node:tls';
import { WebSocketServer } from 'ws';
import { startEchoBackend } from '../helpers/backends.ts';
import { handshakeHeaders, nextMessage, openClient, rawRequest } from '../helpers/clients.ts';
import { eventually, within } from '../helpers/eventually.ts';
import { startGateway, type TestGateway } from '../helpers/gateway.ts';

const TLS_DIR = resolve(import.meta.dirname, '../fixtures/tls');
const CA = readFileSync(resolve(TLS_DIR, 'ca.pem'));
const CERT = readFileSync(resolve(TLS_DIR, 'server.pem'));
const KEY = readFileSync(resolve(TLS_DIR, 'server-key.pem'));

interface Reply {
  readonly status: number;
  readonly headers: IncomingMessage['headers'];
  readonly body: string;
}

function readReply(res: IncomingMessage): Promise<Reply> {
  return within(
    new Promise((resolveReply, reject) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.once('error', reject);
      res.once('end', () =>
        resolveReply({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: Buffer.concat(chunks).toString(),
        }),
      );
    }),
    'a response',
    10_000,
  );
}

/** A GET over https:// trusting the fixture CA, on its own connection. */
function httpsGet(url: string): Promise<Reply> {
  return within(
    new Promise((resolveReply, reject) => {
      const req = httpsRequest(url, { ca: CA, agent: false });
      req.once('response', (res) => resolveReply(readReply(res)));
      req.once('error', reject);
      req.end();
    }),
    `GET ${url}`,
    10_000,
  );
}

/** A GET over plain http://, on its own connection. */
function httpGet(url: string): Promise<Reply> {
  return within(
    new Promise((resolveReply, reject) => {
      const req = httpRequest(url, { agent: false });
      req.once('response', (res) => resolveReply(readReply(res)));
      req.once('error', reject);
      req.end();
    }),
    `GET ${url}`,
    10_000,
  );
}

/** A gateway whose only listener terminates TLS with the fixture certificate. */
function tlsGateway(t: TestContext, backendUrl: string, minVersion?: SecureVersion): Promise<TestGateway> {
  return startGateway(
    t,
    {
      listeners: {
        public: { tls: { cert: 'server.pem', key: 'server-key.pem', ...(minVersion ? { minVersion } : {}) } },
      },
      routes: { echo: { pool: 'echo' } },
      pools: { echo: { backends: [backendUrl] } },
    },
    { baseDir: TLS_DIR },
  );
}

type HandshakeResult = { ok: true; protocol: string | null } | { ok: false; code: string };

/** A bare TLS handshake against the gateway with the given client limits. */
function handshake(port: number, options: ConnectionOptions): Promise<HandshakeResult> {
  return within(
    new Promise((resolveResult) => {
      const socket = tlsConnect({ host: '127.0.0.1', port, ca: CA, ...options });
      socket.once('secureConnect', () => {
        const protocol = socket.getProtocol();
        socket.destroy();
        resolveResult({ ok: true, protocol });
      });
      socket.once('error', (error: NodeJS.ErrnoException) => {
        socket.destroy();
        resolveResult({ ok: false, code: error.code ?? error.message });
      });
    }),
    'a TLS handshake to end',
    10_000,
  );
}

/** Proves the gateway still serves wss:// after a failed handshake. */
async function assertStillServing(gw: TestGateway): Promise<void> {
  const ws = await openClient(`wss://127.0.0.1:${gw.port()}/after`, undefined, { ca: CA });
  ws.send('still up');
  assert.equal((await nextMessage(ws)).data.toString(), 'still up');
  ws.close();
}

/** An https:// backend with the CA-signed fixture certificate: WebSocket echo plus plain GET. */
async function startHttpsBackend(t: TestContext): Promise<{ url: string; upgrades: () => number }> {
  const server = createHttpsServer({ cert: CERT, key: KEY }, (req, res) => {
    res.end(`tls backend ${req.url} proto=${req.headers['x-forwarded-proto']}`);
  });
  const sockets = new Set<Socket>();
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  let upgrades = 0;
  server.prependListener('upgrade', () => void upgrades++);
  const wss = new WebSocketServer({ server });
  wss.on('connection', (socket) => {
    socket.on('error', () => {});
    socket.on('message', (data, isBinary) => socket.send(data, { binary: isBinary }));
  });
  await new Promise<void>((resolveListen) => server.listen(0, '127.0.0.1', resolveListen));
  t.after(
    () =>
      new Promise<void>((resolveClose) => {
        for (const client of wss.clients) client.terminate();
        wss.close();
        for (const socket of sockets) socket.destroy();
        server.close(() => resolveClose());
      }),
  );
  return { url: `https://127.0.0.1:${(server.address() as AddressInfo).port}`, upgrades: () => upgrades };
}

function httpsBackendGateway(t: TestContext, url: string, trustCa: boolean): Promise<TestGateway> {
  return startGateway(
    t,
    {
      routes: { secure: { pool: 'secure' } },
      pools: { secure: { backends: [url], retries: 0, ...(trustCa ? { tls: { ca: 'ca.pem' } } : {}) } },
    },
    { baseDir: TLS_DIR },
  );
}

test('a wss:// client trusting the fixture CA connects through a TLS listener and echoes', async (t) => {
  const backend = await startEchoBackend(t);
  const gw = await tlsGateway(t, backend.url);
  const ws = await openClient(`wss://127.0.0.1:${gw.port()}/chat`, undefined, { ca: CA });
  ws.send('over tls');
  assert.equal((await nextMessage(ws)).data.toString(), 'over tls');
  const upgrade = backend.upgrades[0];
  assert.ok(upgrade);
  assert.equal(upgrade.headers['x-forwarded-proto'], 'https');
  assert.equal(upgrade.headers['x-forwarded-for'], '127.0.0.1');
  ws.close();
});

test('an https:// request through the TLS listener reaches the backend with X-Forwarded-Proto: https', async (t) => {
  const backend = await startEchoBackend(t, {
    onRequest: (req, res) => res.end(`proto=${req.headers['x-forwarded-proto']} path=${req.url}`),
  });
  const gw = await tlsGateway(t, backend.url);
  const reply = await httpsGet(`https://127.0.0.1:${gw.port()}/plain?x=1`);
  assert.equal(reply.status, 200);
  assert.equal(reply.body, 'proto=https path=/plain?x=1');
});

test('a client offering only TLS 1.1 is refused and the gateway keeps serving', async (t) => {
  const backend = await startEchoBackend(t);
  const gw = await tlsGateway(t, backend.url);
  const result = await handshake(gw.port(), {
    minVersion: 'TLSv1',
    maxVersion: 'TLSv1.1',
    // OpenSSL 3 refuses to even offer TLS 1.1 at the default security level.
    ciphers: 'DEFAULT@SECLEVEL=0',
  });
  assert.deepEqual(result, { ok: false, code: 'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION' });
  await eventually(
    () => gw.logs.some((record) => record.msg === 'TLS handshake failed'),
    'the failed handshake to be logged',
  );
  await assertStillServing(gw);
  assert.equal(backend.connections(), 1, 'only the later wss:// client reached the backend');
});

test('a listener with minVersion TLSv1.3 refuses a TLS 1.2 client and accepts a TLS 1.3 one', async (t) => {
  const backend = await startEchoBackend(t);
  const gw = await tlsGateway(t, backend.url, 'TLSv1.3');
  const refused = await handshake(gw.port(), { maxVersion: 'TLSv1.2' });
  assert.deepEqual(refused, { ok: false, code: 'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION' });
  const accepted = await handshake(gw.port(), { minVersion: 'TLSv1.3' });
  assert.deepEqual(accepted, { ok: true, protocol: 'TLSv1.3' });
  await assertStillServing(gw);
});

test('an https:// backend signed by the CA the pool trusts serves upgrades and plain requests', async (t) => {
  const backend = await startHttpsBackend(t);
  const gw = await httpsBackendGateway(t, backend.url, true);
  const ws = await openClient(gw.wsUrl('/secure'));
  ws.send('to a tls backend');
  assert.equal((await nextMessage(ws)).data.toString(), 'to a tls backend');
  ws.close();
  const reply = await httpGet(gw.httpUrl('/page'));
  assert.equal(reply.status, 200);
  assert.equal(reply.body, 'tls backend /page proto=http');
  assert.equal(backend.upgrades(), 1);
});

test('the same https:// backend without the CA in the pool is refused: 502', async (t) => {
  const backend = await startHttpsBackend(t);
  const gw = await httpsBackendGateway(t, backend.url, false);
  const response = await rawRequest(gw.port(), { path: '/secure', headers: handshakeHeaders() });
  t.after(() => response.socket.destroy());
  assert.equal(response.status, 502);
  assert.equal(
    await gw.metric('wsgate_upgrades_total', { route: 'secure', code: 'UPSTREAM_CONNECT_FAILED' }),
    1,
  );
  assert.equal(await gw.metric('wsgate_upgrades_total', { code: 'UPGRADED' }), 0);
  assert.ok(
    gw.logs.some(
      (record) =>
        record.msg === 'backend attempt failed' &&
        String(record.err).startsWith('unable to verify the first certificate'),
    ),
    'the certificate error is logged',
  );

  const reply = await httpGet(gw.httpUrl('/page'));
  assert.equal(reply.status, 502);
  assert.equal(reply.body, 'Bad Gateway\n');
  assert.ok(
    gw.logs.some(
      (record) => record.code === 'HTTP_UPSTREAM_FAILED' && record.err === 'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
    ),
    'the plain request failed on the certificate too',
  );
  assert.equal(backend.upgrades(), 0, 'no request ever reached the untrusted backend');
});
