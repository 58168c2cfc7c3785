/**
 * Backends that break the HTTP exchange of a plain request in ways that raise no error on the
 * gateway's side: a 101 answer to a request that asked for no upgrade, and a connection closed
 * after the request without any answer. The client gets 502 at once, never a hang until it gives
 * up, and the request leaves the registry. Also what is recorded when the client is the one who
 * leaves first (499), and header bytes of a backend's 101 that are not ASCII (relayed unchanged).
 */
import assert from 'node:assert/strict';
import { type AddressInfo, createServer, type Socket } from 'node:net';
import { type TestContext, test } from 'node:test';
import { startHttpBackend, switchingProtocolsHead } from '../helpers/backends.ts';
import { handshakeLines } from '../helpers/clients.ts';
import { eventually, within } from '../helpers/eventually.ts';
import { startGateway } from '../helpers/gateway.ts';
import { exchange, openRaw } from '../helpers/raw-http.ts';

/** A raw TCP backend that runs `onRequest` on the first bytes of each connection. */
async function rawBackend(t: TestContext, onRequest: (socket: Socket) => void): Promise<string> {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
    socket.once('data', () => onRequest(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  t.after(() => {
    for (const socket of sockets) socket.destroy();
    server.close();
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

for (const [fault, answer] of [
  [
    'a 101 to a plain request',
    (socket: Socket) =>
      socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n'),
  ],
  ['a connection closed without an answer', (socket: Socket) => socket.end()],
] as const) {
  test(`regression: ${fault} gets the client 502 at once, not a hang`, async (t) => {
    const backend = await rawBackend(t, answer);
    const gw = await startGateway(t, {
      routes: { app: { pool: 'app' } },
      pools: { app: { backends: [backend], retries: 0, responseTimeout: '30s' } },
    });
    const startedAt = performance.now();
    const result = await exchange(gw.port(), 'GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n', {
      timeoutMs: 5_000,
    });
    assert.equal(result.responses[0]?.status, 502, `${fault}: 502`);
    assert.ok(performance.now() - startedAt < 5_000, `${fault}: well before responseTimeout`);
    const line = gw.logs.find((entry) => entry.msg === 'http request');
    assert.ok(
      line?.code === 'HTTP_UPSTREAM_BAD_RESPONSE' || line?.code === 'HTTP_UPSTREAM_FAILED',
      `${fault}: logged with an upstream code (${String(line?.code)})`,
    );
  });
}

test('regression: a client that leaves before any answer is logged and counted as 499, not 200', async (t) => {
  let arrived = false;
  const backend = await rawBackend(t, () => {
    arrived = true; // and never answers
  });
  const gw = await startGateway(t, {
    routes: { app: { pool: 'app' } },
    pools: { app: { backends: [backend], retries: 0 } },
  });
  const socket = openRaw(gw.port());
  socket.write('GET /wait HTTP/1.1\r\nHost: a\r\n\r\n');
  await eventually(() => arrived, 'the request to reach the backend');
  socket.destroy();
  await eventually(() => gw.logs.some((line) => line.msg === 'http request'), 'the access line');
  const line = gw.logs.find((entry) => entry.msg === 'http request');
  assert.equal(line?.status, 499);
  assert.equal(line?.code, 'HTTP_CLIENT_GONE');
  assert.equal(line?.complete, false);
  assert.equal(await gw.metric('wsgate_http_requests_total', { status: '499' }), 1);
  assert.equal(await gw.metric('wsgate_http_requests_total', { status: '200' }), 0);
});

test("regression: a backend's non-ASCII 101 header bytes reach the client unchanged", async (t) => {
  const backend = await startHttpBackend(
    t,
    (_req, res) => res.end(),
    (req, socket) => {
      const head = switchingProtocolsHead(req).replace('\r\n\r\n', '\r\nX-Note: caf\xe9\r\n\r\n');
      socket.write(Buffer.from(head, 'latin1'));
    },
  );
  const gw = await startGateway(t, {
    routes: { app: { pool: 'app' } },
    pools: { app: { backends: [backend.url] } },
  });
  const upgradeLines = handshakeLines('a');
  const socket = openRaw(gw.port());
  socket.write(`GET /ws HTTP/1.1\r\n${upgradeLines}\r\n`);
  const head = await within(
    new Promise<Buffer>((resolve) => {
      let received = Buffer.alloc(0);
      socket.on('data', (chunk: Buffer) => {
        received = Buffer.concat([received, chunk]);
        if (received.includes('\r\n\r\n')) resolve(received);
      });
    }),
    'the 101',
  );
  socket.destroy();
  assert.ok(head.includes(Buffer.from('X-Note: caf\xe9\r\n', 'latin1')), 'the byte 0xE9 arrives as 0xE9');
});
