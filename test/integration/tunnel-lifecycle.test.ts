/**
 * How established tunnels end when something goes wrong: a backend that resets or closes TCP
 * without a close frame (the client gets 1014), a client that resets or vanishes (the backend gets
 * 1001), protocol violations from either side (1002 to the offender, 1014 or 1002 to the other
 * peer), backpressure from a client that stops reading (the backend is slowed down instead of the
 * gateway buffering), and peers that never finish the closing handshake (destroyed after
 * `tunnel.closeTimeout`). Every test ends with the registry empty (the startGateway leak check).
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { type TestContext, test } from 'node:test';
import { WebSocket } from 'ws';
import {
  type EchoOptions,
  startEchoBackend,
  startHttpBackend,
  switchingProtocolsHead,
} from '../helpers/backends.ts';
import { closeOf, handshakeHeaders, nextMessage, openClient, rawRequest } from '../helpers/clients.ts';
import { eventually, within } from '../helpers/eventually.ts';
import { closePayload, encodeFrame } from '../helpers/frames.ts';
import { type LogRecord, startGateway, type TestGateway } from '../helpers/gateway.ts';
import { assertElapsedAbout } from '../helpers/timing.ts';

interface Frame {
  readonly fin: boolean;
  readonly opcode: number;
  readonly masked: boolean;
  /** Unmasked. */
  readonly payload: Buffer;
}

/** Splits a byte stream into complete frames (RFC 6455 §5.2); an incomplete tail is ignored. */
function parseFrames(data: Buffer): Frame[] {
  const frames: Frame[] = [];
  let at = 0;
  while (at + 2 <= data.length) {
    const b0 = data[at] ?? 0;
    const b1 = data[at + 1] ?? 0;
    let length = b1 & 0x7f;
    let offset = at + 2;
    if (length === 126) {
      if (offset + 2 > data.length) break;
      length = data.readUInt16BE(offset);
      offset += 2;
    } else if (length === 127) {
      if (offset + 8 > data.length) break;
      length = Number(data.readBigUInt64BE(offset));
      offset += 8;
    }
    const masked = (b1 & 0x80) !== 0;
    const key = masked ? data.subarray(offset, offset + 4) : undefined;
    if (masked) offset += 4;
    if (offset + length > data.length) break;
    const payload = Buffer.from(data.subarray(offset, offset + length));
    if (key) for (let i = 0; i < payload.length; i++) payload[i] = (payload[i] ?? 0) ^ (key[i & 3] ?? 0);
    frames.push({ fin: (b0 & 0x80) !== 0, opcode: b0 & 0x0f, masked, payload });
    at = offset + length;
  }
  return frames;
}

/** Code and reason of a close frame's payload. */
function closeInfo(frame: Frame | undefined): { code: number; reason: string } {
  assert.ok(frame, 'a frame was received');
  assert.equal(frame.opcode, 0x8, 'it is a close frame');
  return { code: frame.payload.readUInt16BE(0), reason: frame.payload.toString('utf8', 2) };
}

/** Everything a socket receives from now on, and a promise of its close. */
function collect(
  socket: Socket,
  first: Buffer = Buffer.alloc(0),
): { data: () => Buffer; closed: Promise<void> } {
  let received = first;
  socket.on('data', (chunk: Buffer) => {
    received = Buffer.concat([received, chunk]);
  });
  const closed = within(
    once(socket, 'close').then(() => undefined),
    'the socket to close',
  );
  socket.resume();
  return { data: () => received, closed };
}

/** A completed raw upgrade through the gateway; the socket is paused, `rest` holds early bytes. */
async function rawUpgrade(gw: TestGateway, t: TestContext): Promise<{ socket: Socket; rest: Buffer }> {
  const response = await rawRequest(gw.port(), { path: '/', headers: handshakeHeaders() });
  t.after(() => response.socket.destroy());
  assert.equal(response.status, 101);
  return { socket: response.socket, rest: response.rest };
}

async function echoGateway(t: TestContext, options: EchoOptions = {}, extra: Record<string, unknown> = {}) {
  const backend = await startEchoBackend(t, options);
  const gw = await startGateway(t, {
    routes: { echo: { pool: 'echo' } },
    pools: { echo: { backends: [backend.url] } },
    ...extra,
  });
  return { backend, gw };
}

async function accessLog(gw: TestGateway): Promise<LogRecord> {
  await eventually(() => gw.logs.some((line) => line.msg === 'websocket closed'), 'the access log line');
  const lines = gw.logs.filter((line) => line.msg === 'websocket closed');
  assert.equal(lines.length, 1, 'one access log line');
  return lines[0] ?? {};
}

test('a backend reset mid-stream gives the client 1014', async (t) => {
  const { gw } = await echoGateway(t, {
    onConnection: (socket, req) =>
      socket.on('message', (data) => {
        if (String(data) === 'reset') req.socket.resetAndDestroy();
        else socket.send(`echo ${String(data)}`);
      }),
  });
  const ws = await openClient(gw.wsUrl('/'));
  const reply = nextMessage(ws);
  ws.send('one');
  assert.equal((await reply).data.toString(), 'echo one');
  const closed = closeOf(ws);
  ws.send('reset');
  assert.deepEqual(await closed, { code: 1014, reason: 'backend lost' });
  const line = await accessLog(gw);
  assert.equal(line.code, 'BACKEND_LOST');
  assert.equal(line.initiator, 'backend');
  assert.equal(line.closeCode, 1006);
  assert.equal(line.level, 'warn');
  assert.equal(await gw.metric('wsgate_tunnel_errors_total', { code: 'BACKEND_LOST' }), 1);
  assert.equal(await gw.metric('wsgate_closes_total', { initiator: 'backend', code: '1006' }), 1);
});

test('a backend that closes TCP without a close frame gives the client 1014', async (t) => {
  const { gw } = await echoGateway(t, {
    onConnection: (socket, req) => socket.on('message', () => req.socket.end()),
  });
  const ws = await openClient(gw.wsUrl('/'));
  const closed = closeOf(ws);
  ws.send('bye');
  assert.deepEqual(await closed, { code: 1014, reason: 'backend lost' });
  const line = await accessLog(gw);
  assert.equal(line.code, 'BACKEND_LOST');
  assert.equal(line.initiator, 'backend');
});

for (const how of ['terminate', 'reset'] as const) {
  test(`a client that vanishes (${how}) gives the backend 1001`, async (t) => {
    const { backend, gw } = await echoGateway(t);
    const ws = new WebSocket(gw.wsUrl('/'));
    const upgraded = within(once(ws, 'upgrade'), 'the 101');
    const opened = within(once(ws, 'open'), 'client open');
    const [response] = (await upgraded) as [IncomingMessage];
    await opened;
    const reply = nextMessage(ws);
    ws.send('still here');
    await reply;
    const server = backend.sockets[0];
    assert.ok(server);
    const atBackend = within(once(server, 'close'), 'the backend close');
    if (how === 'terminate') ws.terminate();
    else (response.socket as Socket).resetAndDestroy();
    const [code, reason] = (await atBackend) as [number, Buffer];
    assert.equal(code, 1001);
    assert.equal(reason.toString(), 'client went away');
    const line = await accessLog(gw);
    assert.equal(line.code, 'CLIENT_LOST');
    assert.equal(line.initiator, 'client');
    assert.equal(await gw.metric('wsgate_tunnel_errors_total', { code: 'CLIENT_LOST' }), 1);
  });
}

test('an unmasked frame from the client is a protocol error: 1002 to both sides', async (t) => {
  const { backend, gw } = await echoGateway(t);
  const client = await rawUpgrade(gw, t);
  await eventually(() => backend.sockets.length === 1, 'the backend connection');
  const server = backend.sockets[0];
  assert.ok(server);
  const atBackend = within(once(server, 'close'), 'the backend close');
  const received = collect(client.socket, client.rest);
  client.socket.write(encodeFrame({ opcode: 0x1, masked: false, payload: 'no mask' }));
  const [code, reason] = (await atBackend) as [number, Buffer];
  assert.equal(code, 1002);
  assert.equal(reason.toString(), 'protocol error');
  await received.closed;
  const frames = parseFrames(received.data());
  assert.equal(frames.length, 1, 'only the close frame reached the client');
  assert.equal(frames[0]?.masked, false);
  assert.deepEqual(closeInfo(frames[0]), { code: 1002, reason: 'protocol error' });
  assert.deepEqual(
    received.data(),
    encodeFrame({ opcode: 0x8, payload: closePayload(1002, 'protocol error') }),
  );
  assert.equal(await gw.metric('wsgate_messages_total'), 0, 'the bad frame was not relayed');
  const line = await accessLog(gw);
  assert.equal(line.code, 'CLIENT_PROTOCOL_ERROR');
  assert.equal(line.initiator, 'gateway');
  assert.equal(line.closeCode, 1002);
});

test('a masked frame from the backend is a protocol error: 1014 to the client, 1002 to the backend', async (t) => {
  let backendReceived: { data: () => Buffer; closed: Promise<void> } | undefined;
  const backend = await startHttpBackend(
    t,
    (_req, res) => res.end(),
    (req, socket) => {
      socket.on('end', () => socket.end());
      backendReceived = collect(socket);
      socket.write(switchingProtocolsHead(req));
      socket.write(encodeFrame({ opcode: 0x1, masked: true, payload: 'masked by mistake' }));
    },
  );
  const gw = await startGateway(t, {
    routes: { raw: { pool: 'raw' } },
    pools: { raw: { backends: [backend.url] } },
  });
  const ws = new WebSocket(gw.wsUrl('/'));
  const messages: string[] = [];
  ws.on('message', (data) => messages.push(String(data)));
  const closed = closeOf(ws);
  assert.deepEqual(await closed, { code: 1014, reason: 'backend protocol error' });
  assert.deepEqual(messages, [], 'the bad frame was not relayed');
  assert.ok(backendReceived);
  await backendReceived.closed;
  const frames = parseFrames(backendReceived.data());
  assert.equal(frames.length, 1, 'the backend got one frame: the close');
  assert.equal(frames[0]?.masked, true, 'frames to a backend are masked');
  assert.deepEqual(closeInfo(frames[0]), { code: 1002, reason: 'protocol error' });
  const line = await accessLog(gw);
  assert.equal(line.code, 'BACKEND_PROTOCOL_ERROR');
  assert.equal(line.initiator, 'gateway');
  assert.equal(line.closeCode, 1014);
});

test('a client that stops reading slows the backend down instead of filling the gateway', async (t) => {
  // The backend offers 256 messages of 1 MiB, writing the next one only when its socket has room
  // (as a well-behaved server does). While the client reads nothing, bytes can only sit in the
  // kernel socket buffers on the way (each at most tcp_rmem/tcp_wmem max, 32 MiB on common Linux
  // set-ups) and the gateway's stream buffers. A gateway that ignored backpressure would accept
  // everything into its own memory and let the backend finish; one that pauses the backend when
  // the client side is full keeps the backend waiting.
  const chunk = Buffer.alloc(1024 * 1024, 0x61);
  const count = 256;
  const frameBytes = count * (chunk.length + 10); // 2-byte header + 8-byte length each
  let sent = 0;
  const { backend, gw } = await echoGateway(t, {
    ws: { perMessageDeflate: false },
    onConnection: (socket, req) => {
      const pump = (): void => {
        while (sent < count && socket.bufferedAmount < chunk.length) {
          socket.send(chunk);
          sent++;
        }
      };
      req.socket.on('drain', pump);
      socket.once('message', pump);
    },
  });
  const client = await rawUpgrade(gw, t);
  await eventually(() => backend.sockets.length === 1, 'the backend connection');
  client.socket.write(encodeFrame({ opcode: 0x1, masked: true, payload: 'go' }));
  const forwarded = (): Promise<number> =>
    gw.metric('wsgate_bytes_total', { direction: 'backend_to_client' });
  await eventually(async () => (await forwarded()) > 0, 'the first bytes relayed');

  // Wait until the relay stands still (nothing sent or forwarded for several polls in a row), or
  // until the gateway has taken far more than the client path can hold.
  const limit = 64 * 1024 * 1024;
  let last = '';
  let still = 0;
  await eventually(
    async () => {
      const now = `${sent}/${await forwarded()}`;
      still = now === last ? still + 1 : 0;
      last = now;
      return still >= 10 || (await forwarded()) > limit;
    },
    'the relay to stall behind the client that does not read',
    30_000,
  );
  const forwardedWhileStalled = await forwarded();
  assert.ok(
    forwardedWhileStalled < limit,
    `the gateway took only what the client path holds (${forwardedWhileStalled} bytes)`,
  );
  assert.ok(sent < count, `the backend had to wait (${sent} of ${count} messages sent)`);

  // Once the client reads again, every byte arrives.
  let received = client.rest.length;
  client.socket.on('data', (data: Buffer) => {
    received += data.length;
  });
  client.socket.resume();
  await eventually(() => received >= frameBytes, `all ${frameBytes} bytes at the client`, 60_000);
  assert.equal(received, frameBytes);
  assert.equal(sent, count);
  assert.equal(await forwarded(), frameBytes);
  const closed = within(once(client.socket, 'close'), 'the raw client to close');
  client.socket.write(encodeFrame({ opcode: 0x8, masked: true, payload: closePayload(1000) }));
  await closed;
});

test("a client that never answers the gateway's close is cut after tunnel.closeTimeout", async (t) => {
  const { backend, gw } = await echoGateway(
    t,
    { onConnection: (socket, req) => socket.on('message', () => req.socket.resetAndDestroy()) },
    { tunnel: { closeTimeout: '300ms' } },
  );
  const client = await rawUpgrade(gw, t);
  await eventually(() => backend.sockets.length === 1, 'the backend connection');
  // The raw client sends one message and then never reads again: it cannot answer a close.
  // Taken before the message that makes the backend reset, so never later than the close's start.
  const startedAt = performance.now();
  client.socket.write(encodeFrame({ opcode: 0x1, masked: true, payload: 'reset please' }));
  await eventually(() => gw.gateway.registry.tunnelCount === 0, 'the tunnel to be torn down');
  assertElapsedAbout(startedAt, 300, 'the tunnel torn down after the backend reset');
  assert.equal(client.socket.writableEnded, false, 'the client itself never closed');
  const line = await accessLog(gw);
  assert.equal(line.code, 'BACKEND_LOST');
  // What the client finds when it reads again: the gateway's 1014, then the end of the stream.
  const received = collect(client.socket, client.rest);
  await received.closed;
  const frames = parseFrames(received.data());
  assert.equal(frames.length, 1);
  assert.deepEqual(closeInfo(frames[0]), { code: 1014, reason: 'backend lost' });
});

test("a client that never answers the backend's close is cut after tunnel.closeTimeout", async (t) => {
  const { backend, gw } = await echoGateway(
    t,
    { onConnection: (socket) => socket.on('message', () => socket.close(1000, 'bye')) },
    { tunnel: { closeTimeout: '300ms' } },
  );
  const client = await rawUpgrade(gw, t);
  await eventually(() => backend.sockets.length === 1, 'the backend connection');
  const server = backend.sockets[0];
  assert.ok(server);
  const atBackend = within(once(server, 'close'), 'the backend close');
  // Taken before the message that makes the backend close, so never later than the close's start.
  const startedAt = performance.now();
  client.socket.write(encodeFrame({ opcode: 0x1, masked: true, payload: 'close please' }));
  await eventually(() => gw.gateway.registry.tunnelCount === 0, 'the tunnel to be torn down');
  assertElapsedAbout(startedAt, 300, "the tunnel torn down after the backend's close");
  assert.equal(client.socket.writableEnded, false, 'the client itself never closed');
  const [code] = (await atBackend) as [number, Buffer];
  assert.equal(code, 1006, 'the backend never got a close frame back: its connection was cut');
  const line = await accessLog(gw);
  assert.equal(line.code, 'CLOSE_TIMEOUT');
  assert.equal(line.initiator, 'backend');
  assert.equal(line.closeCode, 1000);
  assert.equal(line.closeReason, 'bye');
  assert.equal(await gw.metric('wsgate_tunnel_errors_total', { code: 'CLOSE_TIMEOUT' }), 1);
  const received = collect(client.socket, client.rest);
  await received.closed;
  const frames = parseFrames(received.data());
  assert.equal(frames.length, 1);
  assert.deepEqual(closeInfo(frames[0]), { code: 1000, reason: 'bye' });
});
