/**
 * Relay properties (fast-check), on fake sockets that record what is written and what is put back:
 * - with size and rate limits, what reaches the destination and the verdict (which limit, at which
 *   stream offset) do not depend on how the stream was split into chunks;
 * - a throttled relay delivers every byte, in order, however the stream was split;
 * - the gateway's pong is taken out and a gateway ping goes in only between frames: the output
 *   parses as valid frames and, without the ping, is the input without the pong;
 * - hostile bytes never throw, and the relay never holds more than a header plus a control frame.
 * Each property is time-boxed so the file stays quick on a slow machine.
 */
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { TrafficCell } from '../../src/observability/metrics.ts';
import type { DirectionLimits } from '../../src/policy/route-policy.ts';
import { FrameScanner } from '../../src/tunnel/frame-scanner.ts';
import { encodePingFrame } from '../../src/tunnel/liveness.ts';
import { PENDING, Relay } from '../../src/tunnel/relay.ts';
import { FakeClock } from '../helpers/fake-clock.ts';
import { encodeFrame, splitAt } from '../helpers/frames.ts';
import { NO_LIMITS, QUIET_OWNER, QUIET_RELAY } from '../helpers/policy.ts';

const TIME_LIMIT_MS = 5_000;
const params = (numRuns: number) => ({ numRuns, plugins: [fc.interruptAfterTimeLimit(TIME_LIMIT_MS)] });
/** Most a relay may hold back: a 14-byte header, or a 6-byte control header and 125 payload bytes. */
const MAX_HELD = 131;

/** A source that records pauses and what is put back; a destination that records writes. */
class FakeSource {
  paused = false;
  readonly putBack: Buffer[] = [];
  pause(): void {
    this.paused = true;
  }
  resume(): void {
    this.paused = false;
  }
  unshift(chunk: Buffer): void {
    this.putBack.push(Buffer.from(chunk));
  }
}
class FakeDestination {
  readonly writable = true;
  readonly written: Buffer[] = [];
  corked = 0;
  cork(): void {
    this.corked++;
  }
  uncork(): void {
    this.corked--;
  }
  write(chunk: Buffer): boolean {
    this.written.push(Buffer.from(chunk));
    return true;
  }
  output(): Buffer {
    return Buffer.concat(this.written);
  }
}

interface Harness {
  readonly relay: Relay;
  readonly source: FakeSource;
  readonly destination: FakeDestination;
  readonly clock: FakeClock;
  readonly limitHits: string[];
}

function harness(limits: DirectionLimits = NO_LIMITS): Harness {
  const source = new FakeSource();
  const destination = new FakeDestination();
  const clock = new FakeClock();
  const limitHits: string[] = [];
  const cell: TrafficCell = { messages: 0, bytes: 0 };
  const relay = new Relay({
    ...QUIET_RELAY,
    source: source as unknown as Socket,
    destination: destination as unknown as Socket,
    cell,
    limits,
    clock,
    owner: { ...QUIET_OWNER, relayLimit: (_from, limit, action) => limitHits.push(`${limit}:${action}`) },
  });
  relay.resume('handshake');
  return { relay, source, destination, clock, limitHits };
}

/** Feeds chunks as a socket would: what the relay puts back comes again once it reads on. */
function run(h: Harness, chunks: readonly Buffer[]) {
  let failure: { code: string | undefined; violation: string; at: number } | undefined;
  const queue = [...chunks];
  for (let guard = 0; queue.length > 0 && guard < 100_000; guard++) {
    while (h.source.paused) h.clock.advance(1_000); // a throttle ends as time goes by
    const chunk = queue.shift() ?? Buffer.alloc(0);
    const result = h.relay.read(chunk);
    assert.notEqual(result, PENDING, 'no inflater here: every read settles at once');
    if (result === PENDING) continue;
    const back = h.source.putBack.splice(0);
    if (back.length > 0) queue.unshift(Buffer.concat(back));
    if (!result.ok && failure === undefined) {
      failure = { code: result.veto?.code, violation: result.violation, at: h.destination.output().length };
      h.relay.closed = true; // what the tunnel does next: nothing more goes on
    }
  }
  return { output: h.destination.output(), failure };
}

const maskKeyArb = fc.uint8Array({ minLength: 4, maxLength: 4 });
const messageArb = fc.record({
  opcode: fc.constantFrom(1, 2),
  fragments: fc.array(fc.integer({ min: 0, max: 3_000 }), { minLength: 1, maxLength: 3 }),
  /** A ping after the first fragment (interleaved control frame). */
  pingInside: fc.boolean(),
});
const streamArb = fc.record({
  maskKey: maskKeyArb,
  messages: fc.array(messageArb, { minLength: 1, maxLength: 8 }),
});
type Stream = typeof streamArb extends fc.Arbitrary<infer T> ? T : never;

function encode(stream: Stream): Buffer {
  const frames: Buffer[] = [];
  for (const message of stream.messages) {
    for (const [index, size] of message.fragments.entries()) {
      frames.push(
        encodeFrame({
          opcode: index === 0 ? message.opcode : 0,
          fin: index === message.fragments.length - 1,
          masked: true,
          maskKey: stream.maskKey,
          payload: Buffer.alloc(size, index + 1),
        }),
      );
      if (index === 0 && message.pingInside) {
        frames.push(encodeFrame({ opcode: 9, masked: true, maskKey: stream.maskKey, payload: 'p' }));
      }
    }
  }
  return Buffer.concat(frames);
}

const cutsArb = fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 30 });
const split = (data: Buffer, cuts: readonly number[]) =>
  splitAt(
    data,
    cuts.map((c) => Math.floor(c * data.length)),
  );

const limitsArb: fc.Arbitrary<DirectionLimits> = fc.record({
  maxMessageBytes: fc.option(fc.integer({ min: 1, max: 6_000 }), { nil: undefined }),
  maxFrameBytes: fc.option(fc.integer({ min: 1, max: 3_000 }), { nil: undefined }),
  messageRate: fc.option(
    fc.record({
      perSecond: fc.constant(0.001),
      burst: fc.integer({ min: 1, max: 6 }),
      action: fc.constant<'close'>('close'),
    }),
    { nil: undefined },
  ),
  byteRate: fc.option(
    fc.record({
      perSecond: fc.constant(1),
      burst: fc.integer({ min: 1, max: 10_000 }),
      action: fc.constant<'close'>('close'),
    }),
    { nil: undefined },
  ),
});

/** Frame-level view of a stream (to compare outputs and check they are valid). */
function frames(data: Buffer): { ok: boolean; kinds: string[] } {
  const kinds: string[] = [];
  const scanner = new FrameScanner(
    { direction: 'client_to_backend', allowedRsv: 0 },
    {
      onMessage: (_opcode, bytes) => kinds.push(`message:${bytes}`),
      onControl: (opcode, bytes) => kinds.push(`control:${opcode}:${bytes}`),
      onClose: () => kinds.push('close'),
    },
  );
  return { ok: scanner.push(data).ok, kinds };
}

describe('Relay properties', () => {
  it('what goes on and where a limit stops the stream do not depend on the splits', () => {
    fc.assert(
      fc.property(streamArb, limitsArb, cutsArb, (stream, limits, cuts) => {
        const data = encode(stream);
        const whole = run(harness(limits), [data]);
        const parts = run(harness(limits), split(data, cuts));
        assert.deepEqual(parts.failure, whole.failure);
        assert.ok(parts.output.equals(whole.output), 'the same bytes went on');
        assert.ok(data.subarray(0, whole.output.length).equals(whole.output), 'a prefix of the input');
        assert.ok(frames(whole.output).ok, 'what went on ends at a frame boundary and is valid');
        if (whole.failure === undefined) assert.equal(whole.output.length, data.length);
      }),
      params(300),
    );
  });

  it('a throttled relay delivers every byte in order, however the stream is split', () => {
    const throttled: DirectionLimits = {
      ...NO_LIMITS,
      messageRate: { perSecond: 2, burst: 2, action: 'throttle' },
      byteRate: { perSecond: 4_000, burst: 5_000, action: 'throttle' },
    };
    fc.assert(
      fc.property(streamArb, cutsArb, (stream, cuts) => {
        const data = encode(stream);
        const h = harness(throttled);
        const { output, failure } = run(h, split(data, cuts));
        assert.equal(failure, undefined);
        assert.ok(output.equals(data), 'everything, in order');
      }),
      params(200),
    );
  });

  it("the gateway's pong is taken out and its ping goes in between frames, whatever the splits", () => {
    fc.assert(
      fc.property(
        streamArb,
        cutsArb,
        fc.integer({ min: 0, max: 7 }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        (stream, cuts, pongAfter, pingAt) => {
          const payload = Buffer.from('gw-ping!');
          const pong = encodeFrame({ opcode: 10, masked: true, maskKey: stream.maskKey, payload });
          const peerPong = encodeFrame({
            opcode: 10,
            masked: true,
            maskKey: stream.maskKey,
            payload: 'peer',
          });
          const before = encode({ ...stream, messages: stream.messages.slice(0, pongAfter) });
          const after = encode({ ...stream, messages: stream.messages.slice(pongAfter) });
          const data = Buffer.concat([before, peerPong, pong, after]);
          const h = harness();
          h.relay.expectPong(payload, 0);
          const chunks = split(data, cuts);
          const ping = encodePingFrame(Buffer.from('to-peer!'), true); // toward a backend: masked
          const pingChunk = Math.floor(pingAt * chunks.length);
          for (const [index, chunk] of chunks.entries()) {
            if (index === pingChunk) h.relay.ping(ping, () => {});
            h.relay.read(chunk);
          }
          const output = h.destination.output();
          assert.equal(h.relay.awaitingPong, false, 'the pong was recognised');
          const parsed = frames(output);
          assert.ok(parsed.ok, 'the output is a valid frame sequence');
          const at = output.indexOf(ping);
          const withoutPing =
            at === -1 ? output : Buffer.concat([output.subarray(0, at), output.subarray(at + ping.length)]);
          assert.ok(at !== -1 || pingChunk >= chunks.length, 'the ping went out');
          assert.ok(
            withoutPing.equals(Buffer.concat([before, peerPong, after])),
            "the input without the gateway's pong (the peer's own pong stays)",
          );
        },
      ),
      params(300),
    );
  });

  it('hostile bytes never throw and never make the relay hold more than a header and a control frame', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 400 }).map((bytes) => Buffer.from(bytes)),
        limitsArb,
        cutsArb,
        fc.boolean(),
        (data, limits, cuts, awaitingPong) => {
          const h = harness(limits);
          if (awaitingPong) h.relay.expectPong(Buffer.from('x'), 0);
          let read = 0;
          for (const chunk of split(data, cuts)) {
            const result = h.relay.read(chunk);
            read += chunk.length;
            if (result === PENDING || !result.ok) break;
            // The gateway's pong (a masked 1-byte pong: 7 bytes) is dropped, not held.
            const dropped = awaitingPong && !h.relay.awaitingPong ? 7 : 0;
            const held = read - h.destination.output().length - dropped;
            assert.ok(held <= MAX_HELD, `held ${held} bytes`);
          }
        },
      ),
      params(400),
    );
  });
});
