/**
 * A Connection header can never take away a header that frames or routes a request. A client
 * that lists Content-Length, Transfer-Encoding, Host or a Sec-WebSocket-* header in Connection is
 * refused with 400 and its connection closed, on plain and TLS listeners, for plain requests and
 * upgrades alike, and the backend is never contacted: before the fix, `Connection: content-length`
 * made the gateway drop the length and forward the body, which the backend read as a second
 * request (skipping every edge check) and answered on the pooled connection the next client got.
 * In responses, the backend's framing and handshake headers are kept whatever its Connection
 * header lists.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { resolve } from 'node:path';
import { type TestContext, test } from 'node:test';
import { type HttpBackend, startHttpBackend, switchingProtocolsHead } from '../helpers/backends.ts';
import { handshakeHeaders, openClient } from '../helpers/clients.ts';
import { startGateway, type TestGateway } from '../helpers/gateway.ts';
import { exchange } from '../helpers/raw-http.ts';

const TLS_DIR = resolve(import.meta.dirname, '../fixtures/tls');
const CA = readFileSync(resolve(TLS_DIR, 'ca.pem'));

const SMUGGLED = 'GET /SMUGGLED HTTP/1.1\r\nHost: internal.example.com\r\n\r\n';

/** A backend that answers every request with its own path, and records the paths it saw. */
async function pathBackend(t: TestContext): Promise<{ backend: HttpBackend; paths: () => string[] }> {
  const backend = await startHttpBackend(t, (req: IncomingMessage, res) => {
    req.resume();
    req.once('end', () => res.end(`you asked for ${req.url ?? ''}`));
  });
  return { backend, paths: () => backend.requests.map((req) => req.url ?? '') };
}

async function gatewayFor(t: TestContext, backendUrl: string, tls: boolean): Promise<TestGateway> {
  return startGateway(
    t,
    {
      ...(tls ? { listeners: { public: { tls: { cert: 'server.pem', key: 'server-key.pem' } } } } : {}),
      routes: { app: { pool: 'app' } },
      pools: { app: { backends: [backendUrl] } },
    },
    { baseDir: TLS_DIR },
  );
}

for (const tls of [false, true]) {
  const scheme = tls ? 'TLS' : 'plain';
  for (const method of ['GET', 'DELETE', 'OPTIONS']) {
    test(`regression: Connection: content-length cannot smuggle a request (${method}, ${scheme})`, async (t) => {
      const { backend, paths } = await pathBackend(t);
      const gw = await gatewayFor(t, backend.url, tls);
      const attack =
        `${method} /x HTTP/1.1\r\nHost: a\r\nConnection: content-length\r\n` +
        `Content-Length: ${SMUGGLED.length}\r\n\r\n${SMUGGLED}`;
      const result = await exchange(gw.port(), attack, tls ? { tlsCa: CA } : {});
      assert.deepEqual(
        result.responses.map((response) => response.status),
        [400],
        `${method} ${scheme}: one answer, 400`,
      );
      assert.equal(result.closedByPeer, true, `${method} ${scheme}: the connection is closed after the 400`);
      assert.equal(backend.connections(), 0, `${method} ${scheme}: the backend is never contacted`);
      // The next client gets its own answer, not the smuggled request's.
      const next = await exchange(gw.port(), 'GET /next HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n', {
        ...(tls ? { tlsCa: CA } : {}),
      });
      assert.equal(
        next.responses[0]?.body,
        'you asked for /next',
        `${method} ${scheme}: next client's answer`,
      );
      assert.deepEqual(paths(), ['/next'], `${method} ${scheme}: the backend saw only the next request`);
    });
  }
}

test('regression: Connection cannot strip Host or Transfer-Encoding from a plain request', async (t) => {
  const { backend } = await pathBackend(t);
  const gw = await gatewayFor(t, backend.url, false);
  const attacks = {
    'close, Host': 'GET /x HTTP/1.1\r\nHost: a\r\nConnection: close, Host\r\n\r\n',
    'keep-alive, host (lower case)': 'GET /x HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, host\r\n\r\n',
    'Transfer-Encoding': `POST /x HTTP/1.1\r\nHost: a\r\nConnection: Transfer-Encoding\r\nTransfer-Encoding: chunked\r\n\r\n${SMUGGLED.length.toString(16)}\r\n${SMUGGLED}\r\n0\r\n\r\n`,
    'two Connection headers': `GET /x HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\nConnection: Content-Length\r\nContent-Length: ${SMUGGLED.length}\r\n\r\n${SMUGGLED}`,
  };
  for (const [name, attack] of Object.entries(attacks)) {
    const result = await exchange(gw.port(), attack);
    assert.deepEqual(
      result.responses.map((response) => response.status),
      [400],
      `Connection: ${name}: refused with 400`,
    );
  }
  assert.equal(backend.connections(), 0, 'the backend is never contacted');
});

test('regression: Connection cannot strip Host or a Sec-WebSocket-* header from an upgrade', async (t) => {
  const { backend } = await pathBackend(t);
  const gw = await gatewayFor(t, backend.url, false);
  const headerLines = (connection: string): string =>
    Object.entries({ ...handshakeHeaders('a'), Connection: connection })
      .map(([name, value]) => `${name}: ${value}\r\n`)
      .join('');
  for (const connection of [
    'Upgrade, Host',
    'Upgrade, Sec-WebSocket-Key',
    'Upgrade, Sec-WebSocket-Extensions',
    'Upgrade, Content-Length',
  ]) {
    const result = await exchange(gw.port(), `GET /ws HTTP/1.1\r\n${headerLines(connection)}\r\n`);
    assert.deepEqual(
      result.responses.map((response) => response.status),
      [400],
      `upgrade with Connection: ${connection}: refused with 400`,
    );
  }
  assert.equal(backend.connections(), 0, 'the backend is never contacted');
  assert.equal(await gw.metric('wsgate_upgrades_total', { code: 'REQUEST_MALFORMED' }), 4);
});

test("a backend's Connection header cannot strip its own framing or handshake headers", async (t) => {
  const backend = await startHttpBackend(
    t,
    (req, res) => {
      req.resume();
      // Content-Length named by Connection: kept, so the client's response stays framed.
      res.writeHead(200, { Connection: 'keep-alive, Content-Length', 'Content-Length': '5' });
      res.end('hello');
    },
    (req, socket) => {
      const head = switchingProtocolsHead(req).replace(
        'Connection: Upgrade\r\n',
        'Connection: Upgrade, Sec-WebSocket-Protocol\r\nSec-WebSocket-Protocol: chat\r\n',
      );
      socket.write(head);
    },
  );
  const gw = await gatewayFor(t, backend.url, false);
  const twice = await exchange(
    gw.port(),
    'GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n',
  );
  assert.deepEqual(
    twice.responses.map((response) => [response.status, response.body]),
    [
      [200, 'hello'],
      [200, 'hello'],
    ],
    'both pipelined responses arrive whole and separate',
  );
  const ws = await openClient(gw.wsUrl('/ws'), 'chat');
  assert.equal(ws.protocol, 'chat', 'Sec-WebSocket-Protocol reaches the client');
  ws.terminate();
});

test('regression: a chunked DELETE or OPTIONS body reaches the backend as a body, not as a request', async (t) => {
  const bodies: string[] = [];
  const backend = await startHttpBackend(t, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.once('end', () => {
      bodies.push(Buffer.concat(chunks).toString());
      res.end(`you asked for ${req.url ?? ''}`);
    });
  });
  const gw = await gatewayFor(t, backend.url, false);
  for (const method of ['DELETE', 'OPTIONS']) {
    const chunked = `${SMUGGLED.length.toString(16)}\r\n${SMUGGLED}\r\n0\r\n\r\n`;
    const result = await exchange(
      gw.port(),
      `${method} /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n${chunked}`,
    );
    assert.deepEqual(
      result.responses.map((response) => response.body),
      ['you asked for /x'],
      `${method}: one answer, for /x`,
    );
  }
  assert.deepEqual(
    backend.requests.map((req) => `${req.method} ${req.url}`),
    ['DELETE /x', 'OPTIONS /x'],
    'the backend saw exactly the two requests sent',
  );
  assert.deepEqual(bodies, [SMUGGLED, SMUGGLED], 'each body arrived whole, as a body');
});

test('regression: a Transfer-Encoding other than plain chunked is refused; Chunked reaches the backend as chunked', async (t) => {
  const { backend } = await pathBackend(t);
  const gw = await gatewayFor(t, backend.url, false);
  const body = `${SMUGGLED.length.toString(16)}\r\n${SMUGGLED}\r\n0\r\n\r\n`;
  for (const coding of ['gzip, chunked', 'identity, chunked', 'gzip']) {
    const result = await exchange(
      gw.port(),
      `POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ${coding}\r\nConnection: close\r\n\r\n${body}`,
    );
    // (With `gzip` alone Node reads no body, so the rest of the bytes may get a 400 of their own.)
    assert.equal(result.responses[0]?.status, 501, `Transfer-Encoding: ${coding}: 501`);
    assert.ok(result.closedByPeer, `Transfer-Encoding: ${coding}: the connection is closed`);
  }
  const twoHeaders = await exchange(
    gw.port(),
    `POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n${body}`,
  );
  assert.deepEqual(
    twoHeaders.responses.map((response) => response.status),
    [501],
    'two Transfer-Encoding headers (gzip, then chunked): 501',
  );
  assert.equal(backend.connections(), 0, 'none of them reached the backend');
  const capitalized = await exchange(
    gw.port(),
    `POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\nConnection: close\r\n\r\n${body}`,
  );
  assert.equal(capitalized.responses[0]?.status, 200);
  assert.equal(
    backend.requests[0]?.headers['transfer-encoding'],
    'chunked',
    'the backend sees plain chunked',
  );
});
