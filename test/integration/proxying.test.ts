/**
 * What a client and a backend see of each other through the gateway: text and binary messages,
 * the request path and query, the subprotocol and permessage-deflate negotiated end to end, close
 * codes and reasons both ways, a 16 MiB message, a fragmented message, pings and pongs both ways,
 * bytes that arrive in the same packet as either handshake, the request headers the backend gets
 * (hop-by-hop ones stripped, X-Forwarded-* set, replaced or appended, X-Real-IP and the other
 * proxy-set headers kept from a trusted proxy only, Host kept or replaced), the
 * backend's own headers on the 101, and the access log line written when a tunnel ends.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import type { IncomingMessage } from 'node:http';
import { connect } from 'node:net';
import { type TestContext, test } from 'node:test';
import { WebSocket } from 'ws';
import {
  type EchoBackend,
  startEchoBackend,
  startHttpBackend,
  switchingProtocolsHead,
} from '../helpers/backends.ts';
import { closeOf, handshakeHeaders, nextMessage, openClient, rawRequest } from '../helpers/clients.ts';
import { eventually, within } from '../helpers/eventually.ts';
import { encodeFrame } from '../helpers/frames.ts';
import { startGateway, type TestGateway } from '../helpers/gateway.ts';

/** Deadline for moving 16 MiB through two hops on a slow machine. */
const BIG_TRANSFER_MS = 30_000;

async function gatewayTo(
  t: TestContext,
  backend: { url: string },
  extra: Record<string, unknown> = {},
  pool: Record<string, unknown> = {},
): Promise<TestGateway> {
  return startGateway(t, {
    routes: { echo: { pool: 'echo' } },
    pools: { echo: { backends: [backend.url], ...pool } },
    ...extra,
  });
}

/** Closes a client normally and waits until the close handshake completed. */
async function closeClient(ws: WebSocket): Promise<void> {
  if (ws.readyState === WebSocket.CLOSED) return;
  const closed = closeOf(ws);
  ws.close(1000);
  await closed;
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

function upgradeOf(backend: EchoBackend, index = 0): IncomingMessage {
  const req = backend.upgrades[index];
  assert.ok(req, `the backend saw upgrade #${index + 1}`);
  return req;
}

test('text stays text and binary stays binary, both ways', async (t) => {
  const backend = await startEchoBackend(t);
  const gw = await gatewayTo(t, backend);
  const ws = await openClient(gw.wsUrl('/echo'));
  let reply = nextMessage(ws);
  ws.send('héllo wörld');
  const text = await reply;
  assert.equal(text.isBinary, false);
  assert.equal(text.data.toString('utf8'), 'héllo wörld');
  const bytes = Buffer.from([0, 1, 2, 0xfe, 0xff]);
  reply = nextMessage(ws);
  ws.send(bytes);
  const binary = await reply;
  assert.equal(binary.isBinary, true);
  assert.deepEqual(binary.data, bytes);
  await closeClient(ws);
  assert.equal(
    await gw.metric('wsgate_messages_total', { route: 'echo', direction: 'client_to_backend' }),
    2,
  );
  assert.equal(
    await gw.metric('wsgate_messages_total', { route: 'echo', direction: 'backend_to_client' }),
    2,
  );
});

test('the path and query reach the backend exactly as sent', async (t) => {
  const backend = await startEchoBackend(t);
  const gw = await gatewayTo(t, backend);
  const path = '/rooms//a%20b/%7Euser/?q=1&r=%2F&r=2&empty=&flag';
  const ws = await openClient(gw.wsUrl(path));
  await closeClient(ws);
  assert.equal(upgradeOf(backend).url, path);
});

test('the backend picks the subprotocol among those the client offered', async (t) => {
  const backend = await startEchoBackend(t, {
    ws: { handleProtocols: (protocols) => [...protocols].at(-1) ?? false },
  });
  const gw = await gatewayTo(t, backend);
  const ws = await openClient(gw.wsUrl('/'), ['chat.v1', 'chat.v2']);
  assert.equal(ws.protocol, 'chat.v2');
  assert.equal(upgradeOf(backend).headers['sec-websocket-protocol'], 'chat.v1,chat.v2');
  assert.equal(backend.sockets[0]?.protocol, 'chat.v2');
  await closeClient(ws);
});

test('permessage-deflate is negotiated end to end and compressed bytes are relayed as such', async (t) => {
  const backend = await startEchoBackend(t, { ws: { perMessageDeflate: true } });
  const gw = await gatewayTo(t, backend);
  const ws = await openClient(gw.wsUrl('/'), undefined, { perMessageDeflate: true });
  assert.match(ws.extensions, /^permessage-deflate/);
  assert.match(upgradeOf(backend).headers['sec-websocket-extensions'] ?? '', /^permessage-deflate/);
  assert.match(backend.sockets[0]?.extensions ?? '', /^permessage-deflate/);

  const payload = 'all work and no play '.repeat(5_000);
  const reply = nextMessage(ws);
  ws.send(payload);
  const echoed = await reply;
  assert.equal(echoed.data.toString('utf8'), payload);
  await closeClient(ws);
  const up = await gw.metric('wsgate_bytes_total', { direction: 'client_to_backend' });
  const down = await gw.metric('wsgate_bytes_total', { direction: 'backend_to_client' });
  assert.ok(
    up > 0 && up < payload.length / 10,
    `client_to_backend carried ${up} bytes for ${payload.length}`,
  );
  assert.ok(down > 0 && down < payload.length / 10, `backend_to_client carried ${down} bytes`);
});

test('a close code and reason from the client reach the backend exactly', async (t) => {
  const backend = await startEchoBackend(t);
  const gw = await gatewayTo(t, backend);
  const ws = await openClient(gw.wsUrl('/'));
  const server = backend.sockets[0];
  assert.ok(server);
  const atBackend = within(once(server, 'close'), 'backend close');
  const atClient = closeOf(ws);
  ws.close(4000, 'client says bye');
  const [code, reason] = (await atBackend) as [number, Buffer];
  assert.equal(code, 4000);
  assert.equal(reason.toString(), 'client says bye');
  assert.deepEqual(await atClient, { code: 4000, reason: 'client says bye' });
  await eventually(async () => (await gw.metric('wsgate_closes_total')) === 1, 'the tunnel ended');
  assert.equal(await gw.metric('wsgate_closes_total', { initiator: 'client', code: '4xxx' }), 1);
});

test('a close code and reason from the backend reach the client exactly', async (t) => {
  const backend = await startEchoBackend(t);
  const gw = await gatewayTo(t, backend);
  const ws = await openClient(gw.wsUrl('/'));
  const server = backend.sockets[0];
  assert.ok(server);
  const atClient = closeOf(ws);
  const atBackend = within(once(server, 'close'), 'backend close');
  server.close(4001, 'backend says bye');
  assert.deepEqual(await atClient, { code: 4001, reason: 'backend says bye' });
  const [code] = (await atBackend) as [number, Buffer];
  assert.equal(code, 4001);
  await eventually(async () => (await gw.metric('wsgate_closes_total')) === 1, 'the tunnel ended');
  assert.equal(await gw.metric('wsgate_closes_total', { initiator: 'backend', code: '4xxx' }), 1);
});

test('a 16 MiB binary message arrives intact both ways', async (t) => {
  const size = 16 * 1024 * 1024;
  let receivedHash = '';
  let receivedLength = 0;
  const backend = await startEchoBackend(t, {
    ws: { maxPayload: 2 * size },
    onConnection: (socket) =>
      socket.on('message', (data, isBinary) => {
        const buffer = data as Buffer;
        receivedHash = sha256(buffer);
        receivedLength = buffer.length;
        socket.send(buffer, { binary: isBinary });
      }),
  });
  const gw = await gatewayTo(t, backend);
  const ws = await openClient(gw.wsUrl('/'), undefined, { maxPayload: 2 * size, perMessageDeflate: false });
  const payload = Buffer.alloc(size);
  for (let i = 0; i < size; i += 4) payload.writeUInt32LE((i * 2654435761) >>> 0, i);
  const reply = within(once(ws, 'message'), 'the 16 MiB echo', BIG_TRANSFER_MS);
  ws.send(payload);
  const [data, isBinary] = (await reply) as [Buffer, boolean];
  assert.equal(receivedLength, size, 'backend got every byte');
  assert.equal(receivedHash, sha256(payload), 'backend got the same bytes');
  assert.equal(isBinary, true);
  assert.equal(data.length, size);
  assert.equal(sha256(data), sha256(payload), 'client got the same bytes back');
  await closeClient(ws);
});

test('a fragmented message arrives whole and counts as one message', async (t) => {
  const received: { data: string; isBinary: boolean }[] = [];
  const backend = await startEchoBackend(t, {
    onConnection: (socket) =>
      socket.on('message', (data, isBinary) => {
        received.push({ data: (data as Buffer).toString('utf8'), isBinary });
        socket.send('got it');
      }),
  });
  const gw = await gatewayTo(t, backend);
  const ws = await openClient(gw.wsUrl('/'), undefined, { perMessageDeflate: false });
  const reply = nextMessage(ws);
  ws.send('first ', { fin: false });
  ws.send('second ', { fin: false });
  ws.send('third', { fin: true });
  assert.equal((await reply).data.toString(), 'got it');
  assert.deepEqual(received, [{ data: 'first second third', isBinary: false }]);
  assert.equal(await gw.metric('wsgate_messages_total', { direction: 'client_to_backend' }), 1);
  await closeClient(ws);
});

test('pings and pongs cross the gateway both ways with their payloads', async (t) => {
  const backend = await startEchoBackend(t);
  const gw = await gatewayTo(t, backend);
  const ws = await openClient(gw.wsUrl('/'));
  const server = backend.sockets[0];
  assert.ok(server);

  const pingAtBackend = within(once(server, 'ping'), 'ping at the backend');
  const pongAtClient = within(once(ws, 'pong'), 'pong at the client');
  ws.ping('from the client');
  assert.equal(((await pingAtBackend)[0] as Buffer).toString(), 'from the client');
  assert.equal(((await pongAtClient)[0] as Buffer).toString(), 'from the client');

  const pingAtClient = within(once(ws, 'ping'), 'ping at the client');
  const pongAtBackend = within(once(server, 'pong'), 'pong at the backend');
  server.ping('from the backend');
  assert.equal(((await pingAtClient)[0] as Buffer).toString(), 'from the backend');
  assert.equal(((await pongAtBackend)[0] as Buffer).toString(), 'from the backend');
  await closeClient(ws);
  assert.equal(await gw.metric('wsgate_messages_total'), 0, 'control frames are not messages');
});

test('a frame sent in the same packet as the client handshake is not lost', async (t) => {
  const atBackend: string[] = [];
  const backend = await startEchoBackend(t, {
    onConnection: (socket) =>
      socket.on('message', (data) => {
        atBackend.push((data as Buffer).toString());
        socket.send('echo early');
      }),
  });
  const gw = await gatewayTo(t, backend);
  const early = encodeFrame({ opcode: 0x1, masked: true, payload: 'early bird' });
  const response = await rawRequest(gw.port(), { path: '/', headers: handshakeHeaders(), extra: early });
  t.after(() => response.socket.destroy());
  assert.equal(response.status, 101);
  await eventually(() => atBackend.length === 1, 'the early message at the backend');
  assert.deepEqual(atBackend, ['early bird']);
  const expected = encodeFrame({ opcode: 0x1, payload: 'echo early' });
  let fromBackend = response.rest;
  response.socket.on('data', (chunk: Buffer) => {
    fromBackend = Buffer.concat([fromBackend, chunk]);
  });
  response.socket.resume();
  await eventually(() => fromBackend.length >= expected.length, 'the echo on the raw client');
  assert.deepEqual(fromBackend.subarray(0, expected.length), expected);
  response.socket.write(encodeFrame({ opcode: 0x8, masked: true, payload: Buffer.from([0x03, 0xe8]) }));
  await within(once(response.socket, 'close'), 'the raw client closed');
});

test('a frame the client sends while the backend is still deciding is relayed after the 101', async (t) => {
  let release: (() => void) | undefined;
  const atBackend: string[] = [];
  const backend = await startEchoBackend(t, {
    ws: {
      verifyClient: (_info, done) => {
        release = () => done(true);
      },
    },
    onConnection: (socket) => socket.on('message', (data) => atBackend.push(String(data))),
  });
  const gw = await gatewayTo(t, backend);
  const socket = connect(gw.port(), '127.0.0.1');
  socket.on('error', () => {});
  t.after(() => socket.destroy());
  const lines = Object.entries(handshakeHeaders()).map(([name, value]) => `${name}: ${value}`);
  socket.write(`GET /early HTTP/1.1\r\n${lines.join('\r\n')}\r\n\r\n`);
  await eventually(() => release !== undefined, 'the backend holding the upgrade');
  socket.write(encodeFrame({ opcode: 0x1, masked: true, payload: 'before the 101' }));
  // One more round trip through the gateway, so that it has most likely read the frame already.
  const other = await rawRequest(gw.port(), {
    path: '/x',
    headers: { Host: '127.0.0.1', Connection: 'close' },
  });
  other.socket.destroy();
  release?.();
  let received = Buffer.alloc(0);
  socket.on('data', (chunk: Buffer) => {
    received = Buffer.concat([received, chunk]);
  });
  await eventually(() => received.includes('\r\n\r\n'), 'the 101 at the raw client');
  assert.match(received.toString('latin1'), /^HTTP\/1\.1 101 /);
  await eventually(() => atBackend.length === 1, 'the message at the backend');
  assert.deepEqual(atBackend, ['before the 101']);
  socket.write(encodeFrame({ opcode: 0x8, masked: true, payload: Buffer.from([0x03, 0xe8]) }));
  await within(once(socket, 'close'), 'the raw client closed');
});

test('a frame the backend sends in the same packet as its 101 is not lost', async (t) => {
  const backend = await startHttpBackend(
    t,
    (_req, res) => res.end(),
    (req, socket) => {
      socket.write(
        Buffer.concat([
          Buffer.from(switchingProtocolsHead(req)),
          encodeFrame({ opcode: 0x1, payload: 'welcome' }),
        ]),
      );
      // Whatever the client sends next is its close frame: answer it and end.
      socket.once('data', () => socket.end(encodeFrame({ opcode: 0x8, payload: Buffer.from([0x03, 0xe8]) })));
    },
  );
  const gw = await gatewayTo(t, backend);
  const ws = new WebSocket(gw.wsUrl('/'), { perMessageDeflate: false });
  const welcome = nextMessage(ws);
  await within(once(ws, 'open'), 'client open');
  assert.equal((await welcome).data.toString(), 'welcome');
  await closeClient(ws);
});

test('hop-by-hop headers are dropped and X-Forwarded-* replace what an untrusted client sent', async (t) => {
  const backend = await startEchoBackend(t);
  const gw = await gatewayTo(t, backend);
  const response = await rawRequest(gw.port(), {
    path: '/hop',
    headers: {
      ...handshakeHeaders('public.example.com'),
      Connection: 'Upgrade, X-Hop',
      'X-Hop': '1',
      'Keep-Alive': 'timeout=5',
      'Proxy-Authorization': 'Basic c2VjcmV0',
      TE: 'trailers',
      'X-Forwarded-For': '203.0.113.9',
      'X-Forwarded-Proto': 'https',
      'X-Forwarded-Host': 'forged.example.com',
      'X-End-To-End': 'kept',
    },
  });
  t.after(() => response.socket.destroy());
  assert.equal(response.status, 101);
  const headers = upgradeOf(backend).headers;
  for (const name of ['x-hop', 'keep-alive', 'proxy-authorization', 'te']) {
    assert.equal(headers[name], undefined, `${name} is not forwarded`);
  }
  assert.equal(headers.connection, 'Upgrade');
  assert.equal(headers.upgrade, 'websocket');
  assert.equal(headers['x-end-to-end'], 'kept');
  assert.equal(headers.host, 'public.example.com');
  assert.equal(headers['x-forwarded-for'], '127.0.0.1');
  assert.equal(headers['x-forwarded-proto'], 'http');
  assert.equal(headers['x-forwarded-host'], 'public.example.com');
  response.socket.write(encodeFrame({ opcode: 0x8, masked: true, payload: Buffer.from([0x03, 0xe8]) }));
  response.socket.resume();
  await within(once(response.socket, 'close'), 'the raw client closed');
});

test('from a trusted proxy, X-Forwarded-For is appended to and the proto and host kept', async (t) => {
  const backend = await startEchoBackend(t);
  const gw = await gatewayTo(t, backend, { forwarding: { trustedProxies: ['127.0.0.1'] } });
  const ws = await openClient(gw.wsUrl('/'), undefined, {
    headers: {
      'X-Forwarded-For': '203.0.113.9, 198.51.100.7',
      'X-Forwarded-Proto': 'https',
      'X-Forwarded-Host': 'edge.example.com',
    },
  });
  const headers = upgradeOf(backend).headers;
  assert.equal(headers['x-forwarded-for'], '203.0.113.9, 198.51.100.7, 127.0.0.1');
  assert.equal(headers['x-forwarded-proto'], 'https');
  assert.equal(headers['x-forwarded-host'], 'edge.example.com');
  await closeClient(ws);
  await eventually(() => gw.logs.some((line) => line.msg === 'websocket closed'), 'the access log line');
  const line = gw.logs.find((entry) => entry.msg === 'websocket closed');
  assert.equal(line?.client, '198.51.100.7', 'the nearest untrusted hop is the client');
});

test("the backend's Set-Cookie and custom headers on the 101 reach the client", async (t) => {
  const backend = await startEchoBackend(t);
  backend.wss.on('headers', (headers: string[]) => {
    headers.push('Set-Cookie: session=abc; Path=/; HttpOnly', 'Set-Cookie: theme=dark', 'X-Backend: node-7');
  });
  const gw = await gatewayTo(t, backend);
  const ws = new WebSocket(gw.wsUrl('/'));
  const upgrade = within(once(ws, 'upgrade'), 'the 101 at the client');
  const opened = within(once(ws, 'open'), 'client open');
  const [response] = (await upgrade) as [IncomingMessage];
  await opened;
  assert.equal(response.statusCode, 101);
  assert.deepEqual(response.headers['set-cookie'], ['session=abc; Path=/; HttpOnly', 'theme=dark']);
  assert.equal(response.headers['x-backend'], 'node-7');
  assert.equal(response.headers.upgrade, 'websocket');
  assert.equal(response.headers.connection, 'Upgrade');
  await closeClient(ws);
});

test('with preserveHost false the backend gets its own host, and X-Forwarded-Host the original', async (t) => {
  const backend = await startEchoBackend(t);
  const gw = await gatewayTo(t, backend, {}, { preserveHost: false });
  const ws = await openClient(gw.wsUrl('/'), undefined, { headers: { Host: 'public.example.com' } });
  const headers = upgradeOf(backend).headers;
  assert.equal(headers.host, `127.0.0.1:${backend.port}`);
  assert.equal(headers['x-forwarded-host'], 'public.example.com');
  await closeClient(ws);
});

test('one access log line per tunnel with route, backend, client, counts, bytes and close', async (t) => {
  const backend = await startEchoBackend(t, {
    ws: { handleProtocols: (offered) => [...offered][0] ?? false },
  });
  const gw = await gatewayTo(t, backend);
  const ws = await openClient(gw.wsUrl('/logged?x=1&token=secret&flag'), 'chat.v1', {
    perMessageDeflate: false,
    headers: { Origin: 'https://app.example', 'User-Agent': 'test-agent/1.0' },
  });
  for (const text of ['hello', 'again']) {
    const reply = nextMessage(ws);
    ws.send(text);
    await reply;
  }
  const closed = closeOf(ws);
  ws.close(1000, 'done');
  assert.equal((await closed).code, 1000);
  await eventually(() => gw.logs.some((line) => line.msg === 'websocket closed'), 'the access log line');
  const lines = gw.logs.filter((line) => line.msg === 'websocket closed');
  assert.equal(lines.length, 1);
  const line = lines[0] ?? {};
  // Client frames are masked: 2 + 4 + 5 bytes per message, and a 2 + 4 + 2 + 4 byte close.
  const bytesIn = 2 * (2 + 4 + 5) + (2 + 4 + 2 + 4);
  // Backend frames are not: 2 + 5 per message, and the echoed 2 + 2 + 4 byte close.
  const bytesOut = 2 * (2 + 5) + (2 + 2 + 4);
  assert.equal(line.level, 'info');
  assert.equal(line.route, 'echo');
  assert.equal(line.pool, 'echo');
  assert.equal(line.backend, backend.url);
  assert.equal(line.client, '127.0.0.1');
  assert.equal(line.path, '/logged?x=[redacted]&token=[redacted]&flag', 'query values are redacted');
  assert.deepEqual(line.messages, { client_to_backend: 2, backend_to_client: 2 });
  assert.deepEqual(line.bytes, { client_to_backend: bytesIn, backend_to_client: bytesOut });
  assert.equal(line.closeCode, 1000);
  assert.equal(line.closeReason, 'done');
  assert.equal(line.initiator, 'client');
  assert.equal(line.code, 'CLIENT_CLOSED', 'a normal close has an outcome code too');
  assert.equal(typeof line.durationMs, 'number');
  assert.equal(typeof line.handshakeMs, 'number');
  assert.equal(line.host, `127.0.0.1:${gw.port()}`);
  assert.equal(line.origin, 'https://app.example');
  assert.equal(line.userAgent, 'test-agent/1.0');
  assert.equal(line.subprotocol, 'chat.v1');
  assert.equal(line.extensions, undefined, 'no extension was negotiated');
  assert.equal(typeof line.requestId, 'string');
  assert.equal(upgradeOf(backend).headers['x-request-id'], line.requestId, 'the backend got the same id');
  const opened = gw.logs.find((entry) => entry.msg === 'websocket opened');
  assert.equal(opened?.requestId, line.requestId, 'the line written at open carries the same id');
  assert.equal(opened?.subprotocol, 'chat.v1');
  assert.equal(await gw.metric('wsgate_bytes_total', { direction: 'client_to_backend' }), bytesIn);
  assert.equal(await gw.metric('wsgate_bytes_total', { direction: 'backend_to_client' }), bytesOut);
});

const PROXY_SET_HEADERS = {
  'X-Real-IP': '6.6.6.6',
  'X-Forwarded-Port': '8443',
  'X-Forwarded-Prefix': '/admin',
  'X-Forwarded-Server': 'edge-1',
};

test('X-Real-IP, X-Forwarded-Port, -Prefix and -Server from an untrusted client do not reach the backend', async (t) => {
  const backend = await startEchoBackend(t);
  const gw = await gatewayTo(t, backend);
  const ws = await openClient(gw.wsUrl('/'), undefined, {
    headers: { ...PROXY_SET_HEADERS, 'X-Kept': 'yes' },
  });
  t.after(() => ws.terminate());
  const seen = backend.upgrades[0]?.headers;
  assert.ok(seen);
  for (const name of Object.keys(PROXY_SET_HEADERS)) {
    assert.equal(seen[name.toLowerCase()], undefined, `${name} is dropped`);
  }
  assert.equal(seen['x-kept'], 'yes');
  assert.equal(seen['x-forwarded-for'], '127.0.0.1');
  await closeClient(ws);
});

test('X-Real-IP, X-Forwarded-Port, -Prefix and -Server from a trusted proxy reach the backend as sent', async (t) => {
  const backend = await startEchoBackend(t);
  const gw = await gatewayTo(t, backend, { forwarding: { trustedProxies: ['127.0.0.1'] } });
  const ws = await openClient(gw.wsUrl('/'), undefined, { headers: PROXY_SET_HEADERS });
  t.after(() => ws.terminate());
  const seen = backend.upgrades[0]?.headers;
  assert.ok(seen);
  for (const [name, value] of Object.entries(PROXY_SET_HEADERS)) {
    assert.equal(seen[name.toLowerCase()], value, name);
  }
  await closeClient(ws);
});
