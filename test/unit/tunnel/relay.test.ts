/**
 * A relay's source is read again only when no reason to pause it is left: the destination's
 * 'drain' lifts backpressure but not a pause something else holds; bytes are counted as relayed,
 * messages only until the gateway's close frame; the close frame is masked toward a backend;
 * held header bytes leave with the next read in one writev.
 */
import assert from 'node:assert/strict';
import { type AddressInfo, connect, createServer, type Socket } from 'node:net';
import { type TestContext, test } from 'node:test';
import type { TrafficCell } from '../../../src/observability/metrics.ts';
import { Relay } from '../../../src/tunnel/relay.ts';
import { SYSTEM_CLOCK } from '../../../src/tunnel/sweeper.ts';
import { encodeFrame } from '../../helpers/frames.ts';
import { QUIET_RELAY } from '../../helpers/policy.ts';

/** Two connected sockets on 127.0.0.1. */
async function socketPair(): Promise<[Socket, Socket]> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const accepted = new Promise<Socket>((resolve) => server.once('connection', resolve));
  const client = connect((server.address() as AddressInfo).port, '127.0.0.1');
  const peer = await accepted;
  server.close();
  return [client, peer];
}

/** A client-to-backend relay between two socket pairs, closed after the test. */
async function relayUnderTest(t: TestContext) {
  const [source, far] = await socketPair();
  const [destination, farDestination] = await socketPair();
  t.after(() => {
    for (const socket of [source, far, destination, farDestination]) socket.destroy();
  });
  const cell: TrafficCell = { messages: 0, bytes: 0 };
  const relay = new Relay({ ...QUIET_RELAY, source, destination, cell, clock: SYSTEM_CLOCK });
  return { relay, source, farDestination, cell };
}

test('the source stays paused while any reason holds it', async (t) => {
  const { relay, source } = await relayUnderTest(t);
  source.pause();
  relay.pause('backpressure');
  relay.resume('backpressure');
  assert.equal(source.isPaused(), true, 'the handshake still holds it');
  relay.pause('backpressure');
  relay.resume('handshake');
  assert.equal(source.isPaused(), true, 'backpressure still holds it');
  relay.resume('backpressure');
  assert.equal(source.isPaused(), false, 'no reason left: read again');
  relay.pause('backpressure');
  relay.flowFreely();
  assert.equal(source.isPaused(), false, 'flowFreely lifts every reason');
});

test('bytes and messages are counted until the close frame, which is masked toward a backend', async (t) => {
  const { relay, farDestination, cell } = await relayUnderTest(t);
  const frame = encodeFrame({ opcode: 1, payload: Buffer.from('hi'), masked: true });
  assert.deepEqual(relay.read(frame), { ok: true });
  assert.deepEqual(
    [relay.messages, relay.bytes, cell.messages, cell.bytes],
    [1, frame.length, 1, frame.length],
  );
  assert.equal(relay.boundaryOut, true);
  relay.writeClose([1001, 'bye'], true);
  assert.equal(relay.closed, true);
  relay.read(frame);
  assert.equal(relay.messages, 1, 'a message after the close frame is not counted');
  const received = await new Promise<Buffer>((resolve) => {
    let data = Buffer.alloc(0);
    farDestination.on('data', (chunk: Buffer) => {
      data = Buffer.concat([data, chunk]);
      if (data.length >= frame.length + 2) resolve(data);
    });
  });
  const close = received.subarray(frame.length);
  assert.equal(close[0], 0x88, 'a close frame');
  assert.equal((close[1] ?? 0) & 0x80, 0x80, 'masked toward the backend');
});

test("regression: the gateway's pong after a frame split across reads is cut out exactly", async (t) => {
  const { relay, farDestination } = await relayUnderTest(t);
  relay.resume('handshake');
  const key = Uint8Array.of(1, 2, 3, 4);
  const peerPong = encodeFrame({ opcode: 10, masked: true, maskKey: key, payload: 'peer' });
  const ours = Buffer.from('gw-ping!');
  const gatewayPong = encodeFrame({ opcode: 10, masked: true, maskKey: key, payload: ours });
  const message = encodeFrame({ opcode: 1, masked: true, maskKey: key, payload: 'after' });
  const stream = Buffer.concat([peerPong, gatewayPong, message]);
  relay.expectPong(ours, 0);
  // The first byte of the peer's pong arrives alone: the relay holds it, then the rest comes.
  relay.read(stream.subarray(0, 1));
  relay.read(stream.subarray(1));
  const expected = Buffer.concat([peerPong, message]);
  const received = await new Promise<Buffer>((resolve) => {
    let data = Buffer.alloc(0);
    farDestination.on('data', (chunk: Buffer) => {
      data = Buffer.concat([data, chunk]);
      if (data.length >= expected.length) resolve(data);
    });
  });
  assert.equal(received.toString('hex'), expected.toString('hex'));
  assert.equal(relay.awaitingPong, false);
});

test('held header bytes and the next read leave in one write, not one per piece', async (t) => {
  const { relay, farDestination } = await relayUnderTest(t);
  const destination = (relay as unknown as { destination: Socket }).destination;
  const writes: number[] = []; // buffers per call into the socket's write path
  const { _write: single, _writev: vectored } = destination as unknown as {
    _write: (...args: unknown[]) => void;
    _writev: (chunks: unknown[], ...rest: unknown[]) => void;
  };
  Object.assign(destination, {
    _write(...args: unknown[]) {
      writes.push(1);
      Reflect.apply(single, destination, args);
    },
    _writev(chunks: unknown[], ...rest: unknown[]) {
      writes.push(chunks.length);
      Reflect.apply(vectored, destination, [chunks, ...rest]);
    },
  });
  const frames = Buffer.concat([
    encodeFrame({ opcode: 2, payload: Buffer.alloc(10, 1), masked: true }),
    encodeFrame({ opcode: 2, payload: Buffer.alloc(10, 2), masked: true }),
  ]);
  const split = 16 + 3; // the first frame and 3 bytes of the second one's header
  let data = Buffer.alloc(0);
  const receivedUpTo = (length: number): Promise<void> =>
    new Promise((resolve) => {
      const onData = (chunk: Buffer): void => {
        data = Buffer.concat([data, chunk]);
        if (data.length < length) return;
        farDestination.off('data', onData);
        resolve();
      };
      farDestination.on('data', onData);
    });
  assert.deepEqual(relay.read(frames.subarray(0, split)), { ok: true });
  await receivedUpTo(16); // the socket has nothing queued: a write now goes straight out
  assert.deepEqual(writes, [1], 'the first frame; the partial header is held');
  assert.deepEqual(relay.read(frames.subarray(split)), { ok: true });
  await receivedUpTo(frames.length);
  assert.deepEqual(data, frames);
  assert.deepEqual(writes, [1, 2], 'the held bytes and the rest of the frame in one writev');
});
