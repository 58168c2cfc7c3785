/**
 * Frame scanner properties (fast-check): verdicts and events never depend on how the stream was
 * split, hostile bytes never throw, and the gateway's own close frames parse back. Each property is
 * time-boxed so the file stays quick on a slow machine.
 */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { encodeCloseFrame } from '../../src/tunnel/close-frame.ts';
import { type Direction, FrameScanner, type ScannerOptions } from '../../src/tunnel/frame-scanner.ts';
import { closePayload, encodeFrame, feed, recordEvents, type ScanEvent, splitAt } from '../helpers/frames.ts';

/** Each property stops after this long on a slow machine; it still passes if no counterexample was found. */
const TIME_LIMIT_MS = 5_000;
const params = (numRuns: number) => ({ numRuns, plugins: [fc.interruptAfterTimeLimit(TIME_LIMIT_MS)] });

const directionArb = fc.constantFrom<Direction>('client_to_backend', 'backend_to_client');
const maskKeyArb = fc.uint8Array({ minLength: 4, maxLength: 4 });
/** Mostly small payloads, some with 16-bit lengths, a few with 64-bit ones. */
const payloadSizeArb = fc.oneof(
  { weight: 6, arbitrary: fc.integer({ min: 0, max: 125 }) },
  { weight: 3, arbitrary: fc.integer({ min: 126, max: 2_000 }) },
  { weight: 1, arbitrary: fc.integer({ min: 65_000, max: 70_000 }) },
);
const controlArb = fc.record({
  opcode: fc.constantFrom<9 | 10>(9, 10),
  size: fc.integer({ min: 0, max: 125 }),
});
const dataArb = fc.record({
  opcode: fc.constantFrom<1 | 2>(1, 2),
  compressed: fc.boolean(),
  /** One entry per frame: its payload size and the control frames sent right after it (if not final). */
  fragments: fc.array(fc.record({ size: payloadSizeArb, controls: fc.array(controlArb, { maxLength: 2 }) }), {
    minLength: 1,
    maxLength: 4,
  }),
});
const closeArb = fc.record({
  code: fc.oneof(
    fc.constantFrom(1000, 1001, 1002, 1003, 1007, 1011, 1014),
    fc.integer({ min: 3000, max: 4999 }),
  ),
  reason: fc.string({ maxLength: 30 }),
});
const streamArb = fc.record({
  direction: directionArb,
  deflate: fc.boolean(),
  maskKey: maskKeyArb,
  items: fc.array(fc.oneof({ weight: 3, arbitrary: dataArb }, { weight: 1, arbitrary: controlArb }), {
    maxLength: 6,
  }),
  close: fc.option(fc.oneof(closeArb, fc.constant(undefined)), { nil: null }),
});
type StreamSpec = typeof streamArb extends fc.Arbitrary<infer T> ? T : never;

interface BuiltStream {
  readonly options: ScannerOptions;
  readonly data: Buffer;
  readonly events: ScanEvent[];
  /** Stream offsets where a frame ends (and 0): the only places where the scanner is at a boundary. */
  readonly frameEnds: Set<number>;
}

/** Encodes a stream spec into bytes plus the events and frame boundaries a scanner must report. */
function build(spec: StreamSpec): BuiltStream {
  const masked = spec.direction === 'client_to_backend';
  const frames: Buffer[] = [];
  const events: ScanEvent[] = [];
  const frameEnds = new Set<number>([0]);
  let offset = 0;
  const add = (frame: Buffer) => {
    frames.push(frame);
    offset += frame.length;
    frameEnds.add(offset);
  };
  const control = (c: { opcode: 9 | 10; size: number }) => {
    add(
      encodeFrame({ opcode: c.opcode, masked, maskKey: spec.maskKey, payload: Buffer.alloc(c.size, 0x70) }),
    );
    events.push({ type: 'control', opcode: c.opcode, bytes: c.size });
  };
  for (const item of spec.items) {
    if (!('fragments' in item)) {
      control(item);
      continue;
    }
    let total = 0;
    for (const [index, fragment] of item.fragments.entries()) {
      const first = index === 0;
      const fin = index === item.fragments.length - 1;
      add(
        encodeFrame({
          opcode: first ? item.opcode : 0,
          fin,
          rsv: first && spec.deflate && item.compressed ? 0x40 : 0,
          masked,
          maskKey: spec.maskKey,
          payload: Buffer.alloc(fragment.size, index),
        }),
      );
      total += fragment.size;
      if (fin) events.push({ type: 'message', opcode: item.opcode, bytes: total });
      else for (const c of fragment.controls) control(c);
    }
  }
  if (spec.close === undefined) {
    add(encodeFrame({ opcode: 8, masked, maskKey: spec.maskKey }));
    events.push({ type: 'close', code: undefined, reason: '' });
  } else if (spec.close !== null) {
    const reason = Buffer.from(spec.close.reason, 'utf8').subarray(0, 123);
    const text = reason.toString('utf8');
    // Keep only reasons that survive the cut whole, so the frame stays valid UTF-8.
    const safe = Buffer.from(text, 'utf8').equals(reason) ? text : '';
    add(
      encodeFrame({ opcode: 8, masked, maskKey: spec.maskKey, payload: closePayload(spec.close.code, safe) }),
    );
    events.push({ type: 'close', code: spec.close.code, reason: safe });
  }
  const options = { direction: spec.direction, allowedRsv: spec.deflate ? 0x40 : 0 };
  return { options, data: Buffer.concat(frames), events, frameEnds };
}

/** Cut points as fractions of the stream, so that one arbitrary fits streams of any length. */
const cutsArb = fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 40 });
const toOffsets = (cuts: readonly number[], length: number) => cuts.map((c) => Math.floor(c * length));

function scan(options: ScannerOptions, chunks: readonly Buffer[]) {
  const trace: ScanEvent[] = [];
  const scanner = new FrameScanner(options, recordEvents(trace));
  const boundaries: boolean[] = [];
  const outcome = feed((chunk) => {
    const result = scanner.push(chunk);
    boundaries.push(scanner.atBoundary);
    return result;
  }, chunks);
  return { ...outcome, trace, boundaries, scanner };
}

describe('FrameScanner properties', () => {
  it('a valid stream yields the same events and verdicts however it is split', () => {
    fc.assert(
      fc.property(streamArb, cutsArb, (spec, cuts) => {
        const { options, data, events, frameEnds } = build(spec);
        const whole = scan(options, [data]);
        assert.equal(whole.failure, undefined, whole.failure?.detail);
        assert.deepEqual(whole.trace, events);

        const chunks = splitAt(data, toOffsets(cuts, data.length));
        const split = scan(options, chunks);
        assert.equal(split.failure, undefined, split.failure?.detail);
        assert.ok(split.results.every((r) => r.ok));
        assert.deepEqual(split.trace, events);
        assert.equal(split.scanner.closeSeen, spec.close !== null);
        let offset = 0;
        for (const [index, chunk] of chunks.entries()) {
          offset += chunk.length;
          assert.equal(split.boundaries[index], frameEnds.has(offset), `atBoundary after ${offset} bytes`);
        }
      }),
      params(150),
    );
  });

  /** Arbitrary bytes, and valid streams with a few bytes overwritten or garbage appended. */
  const hostileArb = fc.oneof(
    fc.record({
      options: fc.record({ direction: directionArb, allowedRsv: fc.constantFrom(0, 0x40, 0x70) }),
      data: fc.uint8Array({ maxLength: 300 }).map((bytes) => Buffer.from(bytes)),
    }),
    fc
      .tuple(
        streamArb,
        fc.array(fc.tuple(fc.double({ min: 0, max: 1, noNaN: true }), fc.integer({ min: 0, max: 255 })), {
          maxLength: 4,
        }),
        fc.uint8Array({ maxLength: 20 }),
      )
      .map(([spec, edits, tail]) => {
        const { options, data } = build(spec);
        const bytes = Buffer.concat([data, tail]);
        for (const [where, value] of edits) bytes[Math.floor(where * bytes.length)] = value;
        return { options, data: bytes };
      }),
  );

  it('hostile input never throws and fails the same way however it is split', () => {
    fc.assert(
      fc.property(hostileArb, cutsArb, ({ options, data }, cuts) => {
        const whole = scan(options, [data]);
        const split = scan(options, splitAt(data, toOffsets(cuts, data.length)));
        assert.deepEqual(split.trace, whole.trace);
        assert.equal(split.failure?.violation, whole.failure?.violation);
        assert.equal(split.failure?.detail, whole.failure?.detail);
        if (whole.failure !== undefined) {
          // The boundary names the same stream offset, or says the frame began in an earlier chunk.
          assert.ok((whole.failureOffset ?? -1) >= 0);
          if (split.failureOffset === -1)
            assert.ok((whole.failureOffset ?? 0) < (split.failureChunkStart ?? 0));
          else assert.equal(split.failureOffset, whole.failureOffset);
          assert.equal(split.scanner.atBoundary, split.failureOffset !== -1);
          for (const [index, later] of split.results.slice((split.failureChunk ?? 0) + 1).entries()) {
            assert.deepEqual(
              later,
              { ...whole.failure, boundary: -1 },
              `push ${index + 1} after the failure repeats it`,
            );
          }
        } else {
          assert.equal(split.scanner.atBoundary, whole.scanner.atBoundary);
          assert.equal(split.scanner.closeSeen, whole.scanner.closeSeen);
        }
      }),
      params(400),
    );
  });

  it('encodeCloseFrame output parses back to the same code and a prefix of the reason', () => {
    const codeArb = fc.oneof(
      fc.constantFrom(1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014),
      fc.integer({ min: 3000, max: 4999 }),
    );
    const reasonArb = fc.oneof(
      fc.string({ maxLength: 200 }),
      fc.string({ unit: 'binary', maxLength: 80 }),
      fc.string({
        unit: fc.integer({ min: 0, max: 0xffff }).map((u) => String.fromCharCode(u)),
        maxLength: 80,
      }),
    );
    fc.assert(
      fc.property(codeArb, reasonArb, directionArb, cutsArb, (code, reason, direction, cuts) => {
        const frame = encodeCloseFrame(code, reason, direction === 'client_to_backend');
        const { trace, failure, scanner } = scan(
          { direction, allowedRsv: 0 },
          splitAt(frame, toOffsets(cuts, frame.length)),
        );
        assert.equal(failure, undefined, failure?.detail);
        assert.equal(scanner.closeSeen, true);
        assert.equal(trace.length, 1);
        const event = trace[0]!;
        assert.equal(event.type, 'close');
        if (event.type !== 'close') return;
        assert.equal(event.code, code);
        const input = Buffer.from(reason, 'utf8');
        const output = Buffer.from(event.reason, 'utf8');
        assert.ok(output.length <= 123);
        assert.ok(input.subarray(0, output.length).equals(output), 'reason is a prefix of the input');
        // Truncation drops at most the one character that did not fit.
        if (input.length <= 123) assert.equal(output.length, input.length);
        else assert.ok(output.length >= 120);
      }),
      params(300),
    );
  });
});
