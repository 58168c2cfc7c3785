/**
 * Relay properties under permessage-deflate with a message size limit (fast-check), on fake
 * sockets: whether a stream of compressed messages is refused does not depend on how it was
 * split into reads, what went on is always a prefix of the input made of whole messages within
 * the limit (inflated) plus at most part of the refused one, and without a refusal everything goes
 * on. Time-boxed like the other properties.
 */
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { describe, it } from 'node:test';
import { constants, deflateRawSync } from 'node:zlib';
import fc from 'fast-check';
import type { DirectionLimits } from '../../src/policy/route-policy.ts';
import { FrameScanner, type ScanResult } from '../../src/tunnel/frame-scanner.ts';
import { PENDING, Relay } from '../../src/tunnel/relay.ts';
import { FakeClock } from '../helpers/fake-clock.ts';
import { encodeFrame, splitAt } from '../helpers/frames.ts';
import { NO_LIMITS, QUIET_OWNER, QUIET_RELAY } from '../helpers/policy.ts';

const TIME_LIMIT_MS = 8_000;

interface Message {
  readonly inflated: number;
  readonly frames: Buffer[];
}

/** One message compressed on its own (no context takeover), its tail stripped, in 1-3 frames. */
function compress(size: number, byte: number, parts: number, maskKey: Uint8Array): Message {
  const payload = Buffer.alloc(size, byte);
  const deflated = deflateRawSync(payload, { finishFlush: constants.Z_SYNC_FLUSH });
  const body = deflated.subarray(0, deflated.length - 4);
  const cuts = Array.from({ length: parts - 1 }, (_, i) => Math.floor(((i + 1) * body.length) / parts));
  const pieces = splitAt(body, cuts);
  const frames = pieces.map((piece, index) =>
    encodeFrame({
      opcode: index === 0 ? 2 : 0,
      fin: index === pieces.length - 1,
      rsv: index === 0 ? 0x40 : 0,
      masked: true,
      maskKey,
      payload: piece,
    }),
  );
  return { inflated: size, frames };
}

/** A relay under permessage-deflate with a size limit, writing into `written`, settled reads to `onSettled`. */
function inflatingRelay(options: {
  readonly written: Buffer[];
  readonly onSettled: (result: ScanResult) => void;
  readonly limits?: Partial<DirectionLimits>;
  readonly source?: object;
  readonly clock?: FakeClock;
  readonly resetEachMessage?: boolean;
}): Relay {
  const relay = new Relay({
    ...QUIET_RELAY,
    source: (options.source ?? { pause() {}, resume() {}, unshift() {} }) as unknown as Socket,
    destination: {
      writable: true,
      cork() {},
      uncork() {},
      write(chunk: Buffer) {
        options.written.push(Buffer.from(chunk));
        return true;
      },
    } as unknown as Socket,
    allowedRsv: 0x40,
    cell: { messages: 0, bytes: 0 },
    limits: { ...NO_LIMITS, maxMessageBytes: 1_000_000, ...options.limits },
    clock: options.clock ?? new FakeClock(),
    deflate: { resetEachMessage: options.resetEachMessage ?? true },
    owner: { ...QUIET_OWNER, relaySettled: (_from, result) => options.onSettled(result) },
  });
  relay.resume('handshake');
  return relay;
}

/** Feeds the chunks in order, waiting for each read the inflater holds; resolves with what went on. */
async function feed(chunks: readonly Buffer[], limit: number) {
  const written: Buffer[] = [];
  let settle: ((result: ScanResult) => void) | undefined;
  const relay = inflatingRelay({
    written,
    limits: { maxMessageBytes: limit },
    onSettled: (result) => settle?.(result),
  });
  let refused: string | undefined;
  for (const chunk of chunks) {
    let result = relay.read(chunk);
    if (result === PENDING) {
      result = await new Promise<ScanResult>((resolve) => {
        settle = resolve;
      });
    }
    if (!result.ok) {
      refused = result.veto?.code ?? result.violation;
      break;
    }
  }
  relay.stop();
  return { output: Buffer.concat(written), refused };
}

/** The whole messages at the start of `output`, with their inflated sizes. */
function wholeMessages(output: Buffer, messages: readonly Message[]): Message[] {
  const whole: Message[] = [];
  let offset = 0;
  for (const message of messages) {
    const bytes = Buffer.concat(message.frames);
    if (offset + bytes.length > output.length) break;
    whole.push(message);
    offset += bytes.length;
  }
  return whole;
}

const baseArb = fc.record({
  maskKey: fc.uint8Array({ minLength: 4, maxLength: 4 }),
  limit: fc.integer({ min: 1, max: 120_000 }),
  messages: fc.array(
    fc.record({
      size: fc.oneof(fc.integer({ min: 0, max: 2_000 }), fc.integer({ min: 2_000, max: 200_000 })),
      byte: fc.integer({ min: 0, max: 255 }),
      parts: fc.integer({ min: 1, max: 3 }),
    }),
    { minLength: 1, maxLength: 5 },
  ),
  cuts: fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 12 }),
});
/** Often a limit right at, or one byte under, one of the messages' sizes: the edges. */
const streamArb = baseArb.chain((base) =>
  fc
    .record({ pick: fc.nat({ max: base.messages.length - 1 }), edge: fc.constantFrom(0, -1, null) })
    .map(({ pick, edge }) => {
      const size = base.messages[pick]?.size ?? 0;
      return edge === null || size + edge < 1 ? base : { ...base, limit: size + edge };
    }),
);

describe('Relay properties under permessage-deflate', () => {
  it('refusal does not depend on the splits, and nothing over the limit goes on whole', async () => {
    await fc.assert(
      fc.asyncProperty(streamArb, async ({ maskKey, limit, messages: specs, cuts }) => {
        const messages = specs.map((m) => compress(m.size, m.byte, m.parts, maskKey));
        const data = Buffer.concat(messages.flatMap((m) => m.frames));
        const overAt = messages.findIndex((m) => m.inflated > limit);
        const whole = await feed([data], limit);
        const split = await feed(
          splitAt(
            data,
            cuts.map((c) => Math.floor(c * data.length)),
          ),
          limit,
        );
        for (const run of [whole, split]) {
          assert.equal(run.refused, overAt === -1 ? undefined : 'CLIENT_MESSAGE_TOO_BIG');
          assert.ok(data.subarray(0, run.output.length).equals(run.output), 'a prefix of the input');
          const delivered = wholeMessages(run.output, messages);
          assert.ok(
            delivered.every((m) => m.inflated <= limit),
            'every whole message that went on is within the limit',
          );
          if (overAt === -1) assert.equal(run.output.length, data.length, 'everything went on');
          else assert.ok(delivered.length <= overAt, 'the message over the limit never went on whole');
        }
        // Read whole, the stream stops at the start of the message over the limit.
        if (overAt !== -1) {
          const before = Buffer.concat(messages.slice(0, overAt).flatMap((m) => m.frames));
          assert.ok(whole.output.equals(before), 'in one read, the cut falls where that message begins');
          const valid = new FrameScanner(
            { direction: 'client_to_backend', allowedRsv: 0x40 },
            {
              onMessage: () => {},
              onControl: () => {},
              onClose: () => {},
            },
          ).push(whole.output);
          assert.ok(valid.ok);
        }
      }),
      { numRuns: 150, plugins: [fc.interruptAfterTimeLimit(TIME_LIMIT_MS)] },
    );
  });
});

describe('Relay under permessage-deflate, a close during the verdict', () => {
  it('regression: a read held for its inflate verdict passes nothing on once the gateway closed meanwhile', async () => {
    const written: Buffer[] = [];
    let settled: ((result: ScanResult) => void) | undefined;
    const relay = inflatingRelay({ written, onSettled: (result) => settled?.(result) });
    const message = compress(10_000, 3, 1, Uint8Array.of(1, 2, 3, 4));
    const verdict = new Promise<ScanResult>((resolve) => {
      settled = resolve;
    });
    assert.equal(relay.read(Buffer.concat(message.frames)), PENDING);
    relay.writeClose([1001, 'shutting down'], true);
    await verdict;
    relay.stop();
    assert.equal(written.length, 1, 'only the close frame went out');
    assert.equal(written[0]?.[0], 0x88);
  });
});

describe('Relay under permessage-deflate and a throttle', () => {
  it('a compressed message whose fragments a throttle holds back is counted and passed on whole', async () => {
    const clock = new FakeClock();
    const written: Buffer[] = [];
    const putBack: Buffer[] = [];
    let paused = false;
    let settled: ((result: ScanResult) => void) | undefined;
    const relay = inflatingRelay({
      written,
      source: {
        pause: () => {
          paused = true;
        },
        resume: () => {
          paused = false;
        },
        unshift: (chunk: Buffer) => void putBack.push(Buffer.from(chunk)),
      },
      limits: { byteRate: { perSecond: 1_000, burst: 1_000, action: 'throttle' } },
      clock,
      resetEachMessage: false,
      onSettled: (result) => settled?.(result),
    });
    // Incompressible bytes, so that each of the three fragments is over the 1,000-byte burst and
    // the second and third wait for tokens in the middle of the compressed message.
    const noise = Buffer.from(Array.from({ length: 6_000 }, (_, i) => (i * 7919 + (i >> 3) * 31) & 0xff));
    const deflated = deflateRawSync(noise, { finishFlush: constants.Z_SYNC_FLUSH });
    const body = deflated.subarray(0, deflated.length - 4);
    const third = Math.floor(body.length / 3);
    const pieces = [body.subarray(0, third), body.subarray(third, 2 * third), body.subarray(2 * third)];
    const frames = pieces.map((piece, index) =>
      encodeFrame({
        opcode: index === 0 ? 2 : 0,
        fin: index === 2,
        rsv: index === 0 ? 0x40 : 0,
        masked: true,
        payload: piece,
      }),
    );
    const queue = [Buffer.concat(frames)];
    for (let guard = 0; queue.length > 0 && guard < 1_000; guard++) {
      while (paused) clock.advance(100);
      let result = relay.read(queue.shift() as Buffer);
      if (result === PENDING) {
        result = await new Promise<ScanResult>((resolve) => {
          settled = resolve;
        });
      }
      assert.ok(result.ok, `no verdict against a valid message (${result.ok ? '' : result.violation})`);
      const back = putBack.splice(0);
      if (back.length > 0) queue.unshift(Buffer.concat(back));
    }
    relay.stop();
    assert.ok(Buffer.concat(written).equals(Buffer.concat(frames)), 'the whole message went on');
  });
});

describe('Relay under permessage-deflate, a close frame behind a held read', () => {
  it('regression: a close frame in a read held for its verdict is not seen as sent until it went on', async () => {
    let settled: ((result: ScanResult) => void) | undefined;
    const relay = inflatingRelay({ written: [], onSettled: (result) => settled?.(result) });
    const key = Uint8Array.of(5, 6, 7, 8);
    const message = compress(5_000, 1, 1, key);
    const close = encodeFrame({ opcode: 8, masked: true, maskKey: key, payload: Buffer.from([0x03, 0xe8]) });
    const verdict = new Promise<ScanResult>((resolve) => {
      settled = resolve;
    });
    assert.equal(relay.read(Buffer.concat([...message.frames, close])), PENDING);
    assert.equal(relay.closeSeen, false, 'the close frame waits with the read');
    await verdict;
    assert.equal(relay.closeSeen, true, 'and counts once it went on');
    relay.stop();
  });
});
