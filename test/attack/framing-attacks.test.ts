/**
 * Framing games against the limits and the gateway's own frames:
 * - a frame header sent byte by byte with long gaps while the gateway pings the other way
 *   (its pings must fall between frames, never inside the held header), both directions;
 * - a header that goes over the frame limit completed byte by byte (nothing of it goes on);
 * - a fragmented message with a ping between every fragment and the gateway's pong among them,
 *   under a throttling message and byte rate and a size limit at exactly its size;
 * - messages and frames at exactly the limits, and one byte over;
 * - a backend sending a huge message, whole or fragmented, to a client under a backend-to-client
 *   limit: the client never receives it whole and the bytes it gets stay bounded.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { closeOf, openClient } from '../helpers/clients.ts';
import { eventually } from '../helpers/eventually.ts';
import { FakeClock } from '../helpers/fake-clock.ts';
import { encodeFrame } from '../helpers/frames.ts';
import { policyGateway, recordingBackend, tunnelEnded } from '../helpers/recording.ts';
import { KIB, MIB, rawBackend, rawClient, serverFrame, sleep } from './peers.ts';

const CLOSE_1000 = Buffer.from([0x03, 0xe8]);

test('a client header sent byte by byte while the gateway pings the backend: the pings fall between frames', async (t) => {
  const clock = new FakeClock();
  const backend = await recordingBackend(t);
  const gw = await policyGateway(
    t,
    backend.url,
    {
      keepalive: { client: 'off', backend: '1s', timeout: '30s' },
      maxFrameSize: { clientToBackend: '70000B' },
    },
    clock,
  );
  const client = await rawClient(t, gw);
  client.send({ opcode: 1, payload: 'hello' });
  await eventually(() => backend.received.length === 1, 'the first message');
  const payload = Buffer.from(Array.from({ length: 70_000 }, (_, i) => i % 256));
  const frame = encodeFrame({ opcode: 2, masked: true, payload });
  for (let i = 0; i < 14; i++) {
    client.socket.write(frame.subarray(i, i + 1)); // 2 + 8 length + 4 mask bytes, one at a time
    clock.advance(1_300);
    await sleep(20);
  }
  client.socket.write(frame.subarray(14));
  await eventually(() => backend.received.length === 2, 'the message', 5_000);
  assert.ok(backend.received[1]?.equals(payload), 'intact');
  assert.ok(backend.pings.length >= 10, `the gateway pinged the backend meanwhile (${backend.pings.length})`);
  assert.ok(
    backend.pings.every((p) => p.length === 8),
    'only gateway pings',
  );
  client.send({ opcode: 8, payload: CLOSE_1000 });
  assert.equal((await tunnelEnded(gw)).code, 'CLIENT_CLOSED');
});

test('a backend header sent byte by byte while the gateway pings the client: the client sees a clean stream', async (t) => {
  const clock = new FakeClock();
  const backend = await rawBackend(t);
  const gw = await policyGateway(t, backend.url, { keepalive: { client: '1s', timeout: '30s' } }, clock);
  const client = await rawClient(t, gw);
  const socket = await backend.connected;
  const payload = Buffer.alloc(300, 9);
  const frame = serverFrame({ opcode: 2, payload, lengthBits: 64 }); // a 10-byte header
  for (let i = 0; i < 10; i++) {
    socket.write(frame.subarray(i, i + 1));
    clock.advance(1_300);
    await sleep(20);
    // Answer the gateway's pings as a client must.
    for (const ping of client.reader.controls(9).slice(i === 0 ? 0 : -1))
      client.send({ opcode: 10, payload: ping });
  }
  socket.write(frame.subarray(10));
  await eventually(() => client.reader.messages().length === 1, 'the message');
  assert.ok(client.reader.messages()[0]?.equals(payload));
  const pings = client.reader.controls(9).length;
  assert.ok(pings >= 3, `pings reached the client while the header was held (${pings})`);
  assert.equal(client.reader.frames.at(-1)?.opcode, 2, 'the data frame came whole after them');
  client.send({ opcode: 8, payload: CLOSE_1000 });
  await eventually(() => (backend.readers[0]?.closeCode ?? 0) === 1000, 'the close to reach the backend');
  socket.end(serverFrame({ opcode: 8, payload: CLOSE_1000 }));
  await tunnelEnded(gw);
});

test('a header over the frame limit completed byte by byte: the backend gets only the close frame', async (t) => {
  const backend = await rawBackend(t);
  const gw = await policyGateway(t, backend.url, { maxFrameSize: { clientToBackend: '1000B' } });
  const client = await rawClient(t, gw);
  await backend.connected;
  const reader = backend.readers[0];
  assert.ok(reader);
  client.send({ opcode: 2, payload: Buffer.alloc(1000, 1) }); // exactly the limit
  await eventually(() => reader.frames.length === 1, 'the frame at the limit');
  const frame = encodeFrame({ opcode: 2, masked: true, payload: Buffer.alloc(1001, 2) });
  for (let i = 0; i < 8; i++) {
    client.socket.write(frame.subarray(i, i + 1));
    await sleep(30);
  }
  await eventually(() => client.reader.closeCode !== undefined, 'the close frame');
  assert.equal(client.reader.closeCode, 1009);
  client.socket.write(frame.subarray(8)); // the rest of the frame: dropped
  // The close, byte by byte too.
  const close = encodeFrame({ opcode: 8, masked: true, payload: Buffer.from([0x03, 0xf1]) });
  for (const byte of close) {
    client.socket.write(Buffer.of(byte));
    await sleep(5);
  }
  await eventually(() => reader.frames.length === 2, "the gateway's close to reach the backend");
  assert.deepEqual(
    reader.frames.map((f) => f.opcode),
    [2, 8],
  );
  assert.equal(reader.pendingPayload, 0, 'no partial frame followed');
  assert.equal(reader.closeCode, 1001);
  backend.sockets[0]?.end(serverFrame({ opcode: 8, payload: Buffer.from([0x03, 0xe9]) }));
  assert.equal((await tunnelEnded(gw)).code, 'CLIENT_MESSAGE_TOO_BIG');
});

test('a fragmented message with a ping after every fragment, under throttles and a size limit at its size', async (t) => {
  const backend = await recordingBackend(t);
  const gw = await policyGateway(t, backend.url, {
    keepalive: { client: '1s', timeout: '10s' },
    maxMessageSize: { clientToBackend: '20000B' },
    messageRate: { clientToBackend: { perSecond: 5, burst: 1 } },
    byteRate: { clientToBackend: { perSecond: '10KiB', burst: '1KiB' } },
  });
  const client = await rawClient(t, gw);
  let answered = 0;
  const answer = (): void => {
    const pings = client.reader.controls(9);
    for (; answered < pings.length; answered++)
      client.send({ opcode: 10, payload: pings[answered] as Buffer });
  };
  const answering = setInterval(answer, 5);
  t.after(() => clearInterval(answering));
  const send = async (fragments: number, size: number, tag: number): Promise<void> => {
    for (let i = 0; i < fragments; i++) {
      client.send({ opcode: i === 0 ? 2 : 0, fin: i === fragments - 1, payload: Buffer.alloc(size, tag) });
      client.send({ opcode: 9, payload: `p${tag}-${i}` });
      await sleep(8); // slowly, so that the gateway's pings (and the answers) fall among the fragments
    }
  };
  const startedAt = performance.now();
  await send(200, 100, 1); // 20000 bytes: exactly the limit
  await eventually(() => backend.received.length === 1, 'the message at the limit', 15_000);
  const elapsed = performance.now() - startedAt;
  assert.equal(backend.received[0]?.length, 20_000);
  assert.ok(elapsed > 1_200, `the byte rate throttled it (${Math.round(elapsed)} ms)`);
  await eventually(() => backend.pings.length === 200, 'every ping of the client');
  assert.ok(
    backend.pings.every((p, i) => String(p) === `p1-${i}`),
    'in order',
  );
  assert.ok(answered >= 1, 'the gateway pinged the client meanwhile');
  assert.deepEqual(backend.pongs, [], "the client's pongs to the gateway stayed in the gateway");
  await send(201, 100, 2); // 20100 bytes: over
  await eventually(() => client.reader.closeCode !== undefined, 'the close frame', 15_000);
  assert.equal(client.reader.closeCode, 1009);
  client.send({ opcode: 8, payload: Buffer.from([0x03, 0xf1]) });
  assert.deepEqual(await backend.closed, { code: 1001, reason: 'client message too big' });
  assert.equal(backend.received.length, 1, 'the message over the limit never arrived');
  assert.equal((await tunnelEnded(gw)).code, 'CLIENT_MESSAGE_TOO_BIG');
});

test('exactly at the limits: a message of 1000 one-byte fragments, a frame at the frame limit, the byte burst', async (t) => {
  const backend = await recordingBackend(t);
  const gw = await policyGateway(t, backend.url, {
    maxMessageSize: { clientToBackend: '1000B' },
    maxFrameSize: { clientToBackend: '1000B' },
    byteRate: { clientToBackend: { perSecond: '1B', burst: '3000B', action: 'close' } },
  });
  const client = await rawClient(t, gw);
  const fragments = Array.from({ length: 1000 }, (_, i) =>
    encodeFrame({ opcode: i === 0 ? 1 : 0, fin: i === 999, masked: true, payload: 'x' }),
  );
  client.socket.write(Buffer.concat(fragments));
  client.send({ opcode: 2, payload: Buffer.alloc(1000, 1) });
  client.send({ opcode: 2, payload: Buffer.alloc(999, 2) });
  client.send({ opcode: 2, payload: Buffer.alloc(1, 3) }); // 3000 bytes: the whole burst
  await eventually(() => backend.received.length === 4, 'the messages at the limits');
  client.send({ opcode: 2, payload: Buffer.alloc(1, 4) }); // the bucket is empty
  await eventually(() => client.reader.closeCode !== undefined, 'the close frame');
  assert.equal(client.reader.closeCode, 1008);
  client.send({ opcode: 8, payload: Buffer.from([0x03, 0xf0]) });
  assert.deepEqual(await backend.closed, { code: 1001, reason: 'client rate limited' });
  assert.deepEqual(
    backend.received.map((m) => m.length),
    [1000, 1000, 999, 1],
  );
  assert.equal((await tunnelEnded(gw)).code, 'CLIENT_RATE_LIMITED');
});

test('a backend sending a 32 MiB message to a client under a 1 MiB limit: 1014, the client gets no byte of it', async (t) => {
  const backend = await recordingBackend(t);
  const gw = await policyGateway(t, backend.url, { maxMessageSize: { backendToClient: '1MiB' } });
  const client = await rawClient(t, gw);
  client.send({ opcode: 1, payload: 'hi' });
  await eventually(() => backend.received.length === 1, 'the backend');
  const before = client.reader.bytes;
  backend.socket().send(Buffer.alloc(32 * MIB, 5));
  await eventually(() => client.reader.closeCode !== undefined, 'the close frame', 10_000);
  assert.equal(client.reader.closeCode, 1014);
  assert.ok(
    client.reader.bytes - before < 200,
    `only the close frame reached the client (${client.reader.bytes - before} bytes)`,
  );
  client.send({ opcode: 8, payload: Buffer.from([0x03, 0xe8]) });
  assert.equal((await backend.closed).code, 1009);
  assert.equal((await tunnelEnded(gw)).code, 'BACKEND_MESSAGE_TOO_BIG');
});

test('a backend sending a huge fragmented message: the client gets the fragments under the limit, then 1014', async (t) => {
  const backend = await recordingBackend(t);
  const gw = await policyGateway(t, backend.url, { maxMessageSize: { backendToClient: '1MiB' } });
  const ws = await openClient(gw.wsUrl('/'), undefined, { maxPayload: 0 });
  const got: number[] = [];
  ws.on('message', (data: Buffer) => got.push(data.length));
  const closed = closeOf(ws, 10_000);
  ws.send('hi');
  await eventually(() => backend.received.length === 1, 'the backend');
  const server = backend.socket();
  for (let i = 0; i < 64; i++) server.send(Buffer.alloc(256 * KIB, i), { fin: i === 63 });
  assert.deepEqual(await closed, { code: 1014, reason: 'backend message too big' });
  assert.deepEqual(got, [], 'never the message');
  assert.equal((await backend.closed).code, 1009);
  assert.equal((await tunnelEnded(gw)).code, 'BACKEND_MESSAGE_TOO_BIG');
});
