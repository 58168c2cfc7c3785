/**
 * Hostile permessage-deflate peers against the inflated-size limit:
 * - corrupt compressed data, in one read and inside a frame that arrives over several reads;
 * - a compressed message cut into thousands of 1-byte frames (under and over the limit);
 * - a bomb in one frame trickled over many reads (the mid-frame case), both directions;
 * - a message inflating to exactly the limit, and one byte more;
 * - compressed messages under a throttling message rate and a throttling byte rate (reads that
 *   wait for the inflater and then for the bucket).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { eventually } from '../helpers/eventually.ts';
import { encodeFrame } from '../helpers/frames.ts';
import { policyGateway, recordingBackend, tunnelEnded } from '../helpers/recording.ts';
import { deflateMessage, KIB, MIB, rawBackend, rawClient, serverFrame, sleep } from './peers.ts';

const DEFLATE = 'permessage-deflate';
const deflatingBackend = (t: Parameters<typeof recordingBackend>[0]) =>
  recordingBackend(t, { ws: { perMessageDeflate: { threshold: 0 } } });

/** Frames carrying one compressed message, its payload cut into pieces of `size` bytes. */
function fragmented(compressed: Buffer, size: number, opcode = 2): Buffer[] {
  const frames: Buffer[] = [];
  for (let at = 0; at < compressed.length; at += size) {
    const first = at === 0;
    frames.push(
      encodeFrame({
        opcode: first ? opcode : 0,
        rsv: first ? 0x40 : 0,
        fin: at + size >= compressed.length,
        masked: true,
        payload: compressed.subarray(at, at + size),
      }),
    );
  }
  return frames;
}

test('corrupt compressed data: the client gets 1002, the backend never a message', async (t) => {
  const backend = await deflatingBackend(t);
  const gw = await policyGateway(t, backend.url, { maxMessageSize: { clientToBackend: '1MiB' } });
  const client = await rawClient(t, gw, { extensions: DEFLATE });
  client.send({ opcode: 2, rsv: 0x40, payload: deflateMessage(Buffer.from('fine')) });
  await eventually(() => backend.received.length === 1, 'a good compressed message');
  client.send({ opcode: 2, rsv: 0x40, payload: Buffer.from([0xff, 0xff, 0xff, 0xff, 0x12, 0x34, 0x56]) });
  await client.closed;
  assert.equal(client.reader.closeCode, 1002);
  assert.equal((await backend.closed).code, 1002);
  assert.deepEqual(backend.received.map(String), ['fine']);
  assert.equal((await tunnelEnded(gw)).code, 'CLIENT_PROTOCOL_ERROR');
});

test('corrupt compressed data inside a frame arriving over several reads: 1002, backend dropped mid-frame', async (t) => {
  const backend = await deflatingBackend(t);
  const gw = await policyGateway(t, backend.url, { maxMessageSize: { clientToBackend: '1MiB' } });
  const client = await rawClient(t, gw, { extensions: DEFLATE });
  // 20 KB of valid (incompressible) data, then a stored block whose LEN and NLEN disagree.
  const good = deflateMessage(randomBytes(20_000));
  const payload = Buffer.concat([good, Buffer.from([0xff, 0xff, 0x12, 0x34]), Buffer.alloc(8 * KIB, 0xff)]);
  const frame = encodeFrame({ opcode: 2, rsv: 0x40, masked: true, payload });
  for (let at = 0; at < frame.length && !client.socket.destroyed; at += 1_000) {
    client.socket.write(frame.subarray(at, at + 1_000));
    await sleep(2);
  }
  await eventually(() => client.reader.closeCode !== undefined, 'the close frame');
  assert.equal(client.reader.closeCode, 1002);
  await client.closed;
  assert.deepEqual(backend.received, []);
  assert.equal((await backend.closed).code, 1006, 'dropped: it had part of the frame');
  assert.equal((await tunnelEnded(gw)).code, 'CLIENT_PROTOCOL_ERROR');
});

test('a compressed message in thousands of 1-byte frames, at the limit, arrives intact', async (t) => {
  const backend = await deflatingBackend(t);
  const gw = await policyGateway(t, backend.url, { maxMessageSize: { clientToBackend: '5000B' } });
  const client = await rawClient(t, gw, { extensions: DEFLATE });
  // Incompressible, so about 5000 frames (ws itself refuses messages of much over 8000 fragments).
  const message = randomBytes(5_000);
  const compressed = deflateMessage(message);
  const frames = fragmented(compressed, 1);
  assert.ok(frames.length > 4_000, `${frames.length} frames`);
  for (let i = 0; i < frames.length; i += 500) client.socket.write(Buffer.concat(frames.slice(i, i + 500)));
  await eventually(() => backend.received.length === 1, 'the message', 10_000);
  assert.ok(backend.received[0]?.equals(message), 'intact');
  client.send({ opcode: 8, payload: Buffer.from([0x03, 0xe8]) });
  await tunnelEnded(gw);
});

test('a compressed message in 1-byte frames inflating over the limit: 1009, never delivered', async (t) => {
  const backend = await deflatingBackend(t);
  const gw = await policyGateway(t, backend.url, { maxMessageSize: { clientToBackend: '64KiB' } });
  const client = await rawClient(t, gw, { extensions: DEFLATE });
  const frames = fragmented(deflateMessage(Buffer.alloc(4 * MIB, 'z')), 1);
  for (let i = 0; i < frames.length && !client.socket.destroyed; i += 300) {
    client.socket.write(Buffer.concat(frames.slice(i, i + 300)));
    await sleep(1);
  }
  await eventually(() => client.reader.closeCode !== undefined, 'the close frame', 10_000);
  assert.equal(client.reader.closeCode, 1009);
  client.send({ opcode: 8, payload: Buffer.from([0x03, 0xf1]) });
  assert.deepEqual(await backend.closed, { code: 1001, reason: 'client message too big' });
  assert.deepEqual(backend.received, []);
  assert.equal((await tunnelEnded(gw)).code, 'CLIENT_MESSAGE_TOO_BIG');
});

test('a bomb in one frame trickled over many reads: the backend is dropped, the client gets 1009', async (t) => {
  const backend = await deflatingBackend(t);
  const gw = await policyGateway(t, backend.url, { maxMessageSize: { clientToBackend: '1MiB' } });
  const client = await rawClient(t, gw, { extensions: DEFLATE });
  // 128 KiB that does not compress, then 64 MiB of zeros: the limit is passed deep inside the frame.
  const bomb = deflateMessage(Buffer.concat([randomBytes(128 * KIB), Buffer.alloc(64 * MIB)]));
  const frame = encodeFrame({ opcode: 2, rsv: 0x40, masked: true, payload: bomb });
  for (let at = 0; at < frame.length && !client.socket.destroyed; at += 256) {
    client.socket.write(frame.subarray(at, at + 256));
    if (at % 4096 === 0) await sleep(1);
  }
  await eventually(() => client.reader.closeCode !== undefined, 'the close frame', 10_000);
  assert.equal(client.reader.closeCode, 1009);
  const closed = await backend.closed;
  assert.equal(closed.code, 1006, 'dropped without a close frame (it had part of a frame)');
  assert.deepEqual(backend.received, []);
  client.send({ opcode: 8, payload: Buffer.from([0x03, 0xf1]) });
  const line = await tunnelEnded(gw);
  assert.equal(line.code, 'CLIENT_MESSAGE_TOO_BIG');
  const detail = String(gw.logs.find((r) => r.msg === 'limit exceeded')?.detail);
  assert.match(detail, /inflating to \d+\+ bytes/);
});

test('a backend bomb in one frame trickled to the client: the client is dropped, the backend gets 1009', async (t) => {
  const backend = await rawBackend(t);
  const gw = await policyGateway(t, backend.url, { maxMessageSize: { backendToClient: '1MiB' } });
  const client = await rawClient(t, gw, { extensions: DEFLATE });
  assert.match(client.head, /permessage-deflate/i);
  const socket = await backend.connected;
  const bomb = deflateMessage(Buffer.concat([randomBytes(128 * KIB), Buffer.alloc(64 * MIB)]));
  const frame = serverFrame({ opcode: 2, rsv: 0x40, payload: bomb });
  for (let at = 0; at < frame.length && !socket.destroyed; at += 512) {
    socket.write(frame.subarray(at, at + 512));
    if (at % 8192 === 0) await sleep(1);
  }
  const reader = backend.readers[0];
  assert.ok(reader);
  await eventually(() => reader.closeCode !== undefined, "the backend's close frame", 10_000);
  assert.equal(reader.closeCode, 1009);
  await client.closed;
  assert.equal(client.reader.closeCode, undefined, 'the client got no close frame (it was mid-frame)');
  assert.equal(client.reader.messages().length, 0, 'and never the whole message');
  assert.ok(client.reader.bytes < frame.length, 'only part of the frame reached the client');
  socket.end(serverFrame({ opcode: 8, payload: Buffer.from([0x03, 0xf1]) }));
  assert.equal((await tunnelEnded(gw)).code, 'BACKEND_MESSAGE_TOO_BIG');
});

test('a message inflating to exactly the limit passes; one byte more is refused', async (t) => {
  const backend = await deflatingBackend(t);
  const gw = await policyGateway(t, backend.url, { maxMessageSize: { clientToBackend: '100000B' } });
  const client = await rawClient(t, gw, { extensions: DEFLATE });
  const exact = Buffer.alloc(100_000, 'e');
  // As one frame, and cut into 3-byte frames.
  client.send({ opcode: 2, rsv: 0x40, payload: deflateMessage(exact) });
  client.socket.write(Buffer.concat(fragmented(deflateMessage(exact), 3)));
  await eventually(() => backend.received.length === 2, 'both messages at the limit');
  assert.ok(backend.received.every((m) => m.equals(exact)));
  client.socket.write(Buffer.concat(fragmented(deflateMessage(Buffer.alloc(100_001, 'e')), 3)));
  await eventually(() => client.reader.closeCode !== undefined, 'the close frame');
  assert.equal(client.reader.closeCode, 1009);
  client.send({ opcode: 8, payload: Buffer.from([0x03, 0xf1]) });
  assert.equal((await backend.closed).code, 1001);
  assert.equal(backend.received.length, 2);
  await tunnelEnded(gw);
});

test('compressed messages under a throttling message rate all arrive intact and in order', async (t) => {
  const backend = await deflatingBackend(t);
  const gw = await policyGateway(t, backend.url, {
    maxMessageSize: { clientToBackend: '1MiB' },
    messageRate: { clientToBackend: { perSecond: 100, burst: 5 } },
  });
  const client = await rawClient(t, gw, { extensions: DEFLATE });
  const sent = Array.from({ length: 120 }, (_, i) => Buffer.from(`message ${i} `.repeat(200)));
  // Mixed: single compressed frames, fragmented compressed messages, and uncompressed ones.
  const frames = sent.flatMap((message, i) =>
    i % 3 === 0
      ? [encodeFrame({ opcode: 2, rsv: 0x40, masked: true, payload: deflateMessage(message) })]
      : i % 3 === 1
        ? fragmented(deflateMessage(message), 7)
        : [encodeFrame({ opcode: 2, masked: true, payload: message })],
  );
  client.socket.write(Buffer.concat(frames));
  await eventually(() => backend.received.length === sent.length, 'every message', 15_000);
  assert.ok(
    backend.received.every((m, i) => m.equals(sent[i] as Buffer)),
    'intact and in order',
  );
  client.send({ opcode: 8, payload: Buffer.from([0x03, 0xe8]) });
  await tunnelEnded(gw);
});

test('a fragmented compressed message under a throttling byte rate arrives intact, then a bomb is caught', async (t) => {
  const backend = await deflatingBackend(t);
  const gw = await policyGateway(t, backend.url, {
    maxMessageSize: { clientToBackend: '1MiB' },
    byteRate: { clientToBackend: { perSecond: '64KiB', burst: '2KiB' } },
  });
  const client = await rawClient(t, gw, { extensions: DEFLATE });
  const message = randomBytes(200 * KIB); // incompressible: 200 KiB on the wire, about 3 s
  const compressed = deflateMessage(message);
  const startedAt = performance.now();
  client.socket.write(Buffer.concat(fragmented(compressed, 1_500)));
  client.socket.write(Buffer.concat(fragmented(deflateMessage(Buffer.alloc(16 * MIB)), 1_500)));
  await eventually(() => client.reader.closeCode !== undefined, 'the close frame', 20_000);
  assert.equal(client.reader.closeCode, 1009);
  client.send({ opcode: 8, payload: Buffer.from([0x03, 0xf1]) });
  assert.equal((await backend.closed).code, 1001);
  assert.equal(backend.received.length, 1);
  assert.ok(backend.received[0]?.equals(message), 'the first message intact');
  assert.ok(performance.now() - startedAt > 2_000, 'and it was throttled');
  await tunnelEnded(gw);
});
