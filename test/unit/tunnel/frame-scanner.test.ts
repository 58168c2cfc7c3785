/**
 * Frame scanner unit tests: RFC 6455 §5.7 example frames and hand-built frames for every rule,
 * each fed whole, byte by byte and at seeded random splits, with the events compared.
 */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  type Direction,
  FrameScanner,
  type ScannerOptions,
  type ScanResult,
} from '../../../src/tunnel/frame-scanner.ts';
import {
  bytewise,
  closePayload,
  encodeFrame,
  type FeedOutcome,
  feed,
  hex,
  recordEvents,
  type ScanEvent,
  splitAt,
} from '../../helpers/frames.ts';

const C2B: ScannerOptions = { direction: 'client_to_backend', allowedRsv: 0 };
const B2C: ScannerOptions = { direction: 'backend_to_client', allowedRsv: 0 };

interface Run extends FeedOutcome {
  readonly trace: ScanEvent[];
  readonly scanner: FrameScanner;
}

function run(options: ScannerOptions, chunks: readonly Buffer[]): Run {
  const trace: ScanEvent[] = [];
  const scanner = new FrameScanner(options, recordEvents(trace));
  return { ...feed((chunk) => scanner.push(chunk), chunks), trace, scanner };
}

/** A small deterministic generator so that "random" splits are reproducible. */
function seededCuts(length: number, seed: number, count: number): number[] {
  let state = seed >>> 0 || 1;
  const cuts: number[] = [];
  for (let i = 0; i < count; i++) {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    cuts.push((state >>> 0) % (length + 1));
  }
  return cuts;
}

/** The same stream fed whole, byte by byte and at several seeded random splits. */
function splits(data: Buffer): Array<[string, Buffer[]]> {
  const ways: Array<[string, Buffer[]]> = [
    ['whole', [data]],
    ['byte by byte', bytewise(data)],
  ];
  for (const seed of [1, 7, 42, 1234, 99_991]) {
    ways.push([`seed ${seed}`, splitAt(data, seededCuts(data.length, seed, 1 + (seed % 9)))]);
  }
  return ways;
}

/** `how` a stream was split, after `what` it holds when a test loops over cases. */
function label(how: string, what: string | undefined): string {
  return what === undefined ? how : `${what}, ${how}`;
}

/**
 * Asserts every way of splitting `data` ends in `expected` events, all pushes ok, at a boundary;
 * `what` names the case in every failure message.
 */
function assertValid(options: ScannerOptions, data: Buffer, expected: ScanEvent[], what?: string): void {
  for (const [how, chunks] of splits(data)) {
    const r = run(options, chunks);
    const where = label(how, what);
    assert.equal(r.failure, undefined, `${where}: ${r.failure?.violation} ${r.failure?.detail}`);
    assert.deepEqual(r.trace, expected, where);
    assert.equal(r.scanner.atBoundary, true, `${where}: at a boundary`);
  }
}

/**
 * Asserts every way of splitting `data` fails with `violation` after exactly the `before` events;
 * `what` names the case in every failure message.
 */
function assertViolation(
  options: ScannerOptions,
  data: Buffer,
  violation: string,
  before: ScanEvent[] = [],
  what?: string,
): void {
  for (const [how, chunks] of splits(data)) {
    const r = run(options, chunks);
    const where = label(how, what);
    assert.equal(r.failure?.violation, violation, `${where}: got ${r.failure?.violation ?? 'ok'}`);
    assert.deepEqual(r.trace, before, where);
    // Every push after the first failure repeats it with boundary -1.
    for (const [index, later] of r.results.slice((r.failureChunk ?? 0) + 1).entries()) {
      assert.deepEqual(
        later,
        { ok: false, violation, detail: r.failure?.detail, boundary: -1 },
        `${where}: push ${index + 1} after the failure repeats it`,
      );
    }
  }
}

const msg = (opcode: 1 | 2, bytes: number): ScanEvent => ({ type: 'message', opcode, bytes });
const ctl = (opcode: 9 | 10, bytes: number): ScanEvent => ({ type: 'control', opcode, bytes });
const close = (code: number | undefined, reason: string): ScanEvent => ({ type: 'close', code, reason });

function maskedFor(direction: Direction): boolean {
  return direction === 'client_to_backend';
}

describe('FrameScanner: RFC 6455 §5.7 examples', () => {
  it('single-frame unmasked text "Hello" (backend to client)', () => {
    assertValid(B2C, hex('810548656c6c6f'), [msg(1, 5)]);
  });

  it('single-frame masked text "Hello" (client to backend)', () => {
    assertValid(C2B, hex('818537fa213d7f9f4d5158'), [msg(1, 5)]);
  });

  it('fragmented unmasked text "Hel" + "lo" reports one message when the final header arrives', () => {
    assertValid(B2C, hex('010348656c 80026c6f'), [msg(1, 5)]);
  });

  it('unmasked ping and masked pong', () => {
    assertValid(B2C, hex('890548656c6c6f'), [ctl(9, 5)]);
    assertValid(C2B, hex('8a8537fa213d7f9f4d5158'), [ctl(10, 5)]);
  });

  it('256 bytes of binary with a 16-bit length', () => {
    const data = Buffer.concat([hex('827e0100'), Buffer.alloc(256, 0xab)]);
    assertValid(B2C, data, [msg(2, 256)]);
  });

  it('64 KiB of binary with a 64-bit length', () => {
    const data = Buffer.concat([hex('827f0000000000010000'), Buffer.alloc(65_536, 0xcd)]);
    assertValid(B2C, data, [msg(2, 65_536)]);
  });

  it('the same frames built by the test encoder match the RFC bytes', () => {
    assert.deepEqual(encodeFrame({ opcode: 1, payload: 'Hello' }), hex('810548656c6c6f'));
    assert.deepEqual(
      encodeFrame({ opcode: 1, payload: 'Hello', masked: true }),
      hex('818537fa213d7f9f4d5158'),
    );
    assert.deepEqual(encodeFrame({ opcode: 2, payload: Buffer.alloc(256) }).subarray(0, 4), hex('827e0100'));
    assert.deepEqual(
      encodeFrame({ opcode: 2, payload: Buffer.alloc(65_536) }).subarray(0, 10),
      hex('827f0000000000010000'),
    );
  });
});

describe('FrameScanner: streams of frames', () => {
  it('reports a sequence of messages, control frames and a close in order', () => {
    for (const options of [C2B, B2C]) {
      const masked = maskedFor(options.direction);
      const data = Buffer.concat([
        encodeFrame({ opcode: 1, payload: 'hi', masked }),
        encodeFrame({ opcode: 9, payload: 'p', masked }),
        encodeFrame({ opcode: 2, payload: Buffer.alloc(300), masked }),
        encodeFrame({ opcode: 10, masked }),
        encodeFrame({ opcode: 1, masked }),
        encodeFrame({ opcode: 8, payload: closePayload(1000, 'done'), masked }),
      ]);
      assertValid(
        options,
        data,
        [msg(1, 2), ctl(9, 1), msg(2, 300), ctl(10, 0), msg(1, 0), close(1000, 'done')],
        options.direction,
      );
    }
  });

  it('allows control frames between the fragments of a message (RFC 6455 §5.4)', () => {
    const data = Buffer.concat([
      encodeFrame({ opcode: 2, fin: false, payload: Buffer.alloc(200), masked: true }),
      encodeFrame({ opcode: 9, payload: 'a', masked: true }),
      encodeFrame({ opcode: 0, fin: false, payload: Buffer.alloc(70_000), masked: true }),
      encodeFrame({ opcode: 10, payload: 'bb', masked: true }),
      encodeFrame({ opcode: 0, fin: false, masked: true }),
      encodeFrame({ opcode: 0, payload: 'end', masked: true }),
      encodeFrame({ opcode: 1, payload: 'next', masked: true }),
    ]);
    assertValid(C2B, data, [ctl(9, 1), ctl(10, 2), msg(2, 200 + 70_000 + 3), msg(1, 4)]);
  });

  it('accepts non-minimal length encodings, as common implementations do', () => {
    const data = Buffer.concat([
      encodeFrame({ opcode: 1, payload: 'abc', lengthBits: 16 }),
      encodeFrame({ opcode: 2, payload: 'abcd', lengthBits: 64 }),
    ]);
    assertValid(B2C, data, [msg(1, 3), msg(2, 4)]);
  });

  it('accepts a 64-bit length of exactly 2^53-1 and then only counts payload', () => {
    const r = run(B2C, [encodeFrame({ opcode: 2, declaredLength: 2n ** 53n - 1n }), Buffer.alloc(1_000_000)]);
    assert.equal(r.failure, undefined);
    assert.deepEqual(r.trace, [msg(2, Number.MAX_SAFE_INTEGER)]);
    assert.equal(r.scanner.atBoundary, false);
  });

  it('returns one shared frozen ok result and ignores empty chunks', () => {
    const trace: ScanEvent[] = [];
    const scanner = new FrameScanner(B2C, recordEvents(trace));
    const a = scanner.push(hex('8100'));
    const b = scanner.push(Buffer.alloc(0));
    assert.deepEqual(a, { ok: true });
    assert.equal(a, b);
    assert.ok(Object.isFrozen(a));
    assert.deepEqual(trace, [msg(1, 0)]);
  });
});

describe('FrameScanner: direction rules (RFC 6455 §5.1)', () => {
  it('rejects an unmasked frame from the client', () => {
    assertViolation(C2B, hex('810548656c6c6f'), 'BAD_MASK');
  });

  it('rejects a masked frame from the backend', () => {
    assertViolation(B2C, hex('818537fa213d7f9f4d5158'), 'BAD_MASK');
  });

  it('rejects a wrongly masked control frame too', () => {
    assertViolation(C2B, hex('8900'), 'BAD_MASK');
    assertViolation(B2C, encodeFrame({ opcode: 8, masked: true }), 'BAD_MASK');
  });
});

describe('FrameScanner: RSV bits', () => {
  const deflate: ScannerOptions = { direction: 'backend_to_client', allowedRsv: 0x40 };

  it('rejects any RSV bit when no extension was negotiated', () => {
    for (const rsv of [0x40, 0x20, 0x10, 0x70]) {
      assertViolation(B2C, encodeFrame({ opcode: 1, rsv, payload: 'x' }), 'RESERVED_BITS', [], `rsv ${rsv}`);
    }
  });

  it('allows RSV1 on the first frame of a message when permessage-deflate was negotiated', () => {
    const data = Buffer.concat([
      encodeFrame({ opcode: 1, rsv: 0x40, payload: 'x' }),
      encodeFrame({ opcode: 2, rsv: 0x40, fin: false, payload: 'y' }),
      encodeFrame({ opcode: 0, payload: 'z' }),
    ]);
    assertValid(deflate, data, [msg(1, 1), msg(2, 2)]);
  });

  it('rejects RSV1 on a continuation frame even when negotiated (RFC 7692 §6)', () => {
    const data = Buffer.concat([
      encodeFrame({ opcode: 1, rsv: 0x40, fin: false, payload: 'x' }),
      encodeFrame({ opcode: 0, rsv: 0x40, payload: 'y' }),
    ]);
    assertViolation(deflate, data, 'RESERVED_BITS');
  });

  it('rejects RSV1 on control frames even when negotiated', () => {
    for (const opcode of [8, 9, 10]) {
      assertViolation(deflate, encodeFrame({ opcode, rsv: 0x40 }), 'RESERVED_BITS', [], `opcode ${opcode}`);
    }
  });

  it('rejects RSV bits that were not negotiated alongside allowed ones', () => {
    assertViolation(deflate, encodeFrame({ opcode: 1, rsv: 0x20 }), 'RESERVED_BITS');
    assertViolation(deflate, encodeFrame({ opcode: 1, rsv: 0x50 }), 'RESERVED_BITS');
    const rsv2: ScannerOptions = { direction: 'client_to_backend', allowedRsv: 0x60 };
    assertValid(rsv2, encodeFrame({ opcode: 2, rsv: 0x60, masked: true }), [msg(2, 0)]);
    assertViolation(rsv2, encodeFrame({ opcode: 2, rsv: 0x10, masked: true }), 'RESERVED_BITS');
  });
});

describe('FrameScanner: opcodes, fragmentation and control frames', () => {
  it('rejects every reserved opcode', () => {
    for (const opcode of [0x3, 0x4, 0x5, 0x6, 0x7, 0xb, 0xc, 0xd, 0xe, 0xf]) {
      assertViolation(B2C, encodeFrame({ opcode, payload: 'x' }), 'BAD_OPCODE', [], `opcode ${opcode}`);
    }
  });

  it('rejects a fragmented control frame (RFC 6455 §5.5)', () => {
    for (const opcode of [8, 9, 10]) {
      assertViolation(
        C2B,
        encodeFrame({ opcode, fin: false, masked: true }),
        'BAD_CONTROL_FRAME',
        [],
        `opcode ${opcode}`,
      );
    }
  });

  it('rejects a control frame with more than 125 bytes, whatever the length encoding', () => {
    assertViolation(B2C, encodeFrame({ opcode: 9, payload: Buffer.alloc(126) }), 'BAD_CONTROL_FRAME');
    assertViolation(B2C, encodeFrame({ opcode: 10, payload: 'x', lengthBits: 16 }), 'BAD_CONTROL_FRAME');
    assertViolation(
      B2C,
      encodeFrame({ opcode: 8, payload: closePayload(1000), lengthBits: 64 }),
      'BAD_CONTROL_FRAME',
    );
    assertValid(B2C, encodeFrame({ opcode: 9, payload: Buffer.alloc(125) }), [ctl(9, 125)]);
  });

  it('rejects a continuation frame with no message in progress (RFC 6455 §5.4)', () => {
    assertViolation(B2C, encodeFrame({ opcode: 0, payload: 'x' }), 'UNEXPECTED_CONTINUATION');
    const afterFinal = Buffer.concat([
      encodeFrame({ opcode: 1, payload: 'a' }),
      encodeFrame({ opcode: 0, payload: 'b' }),
    ]);
    assertViolation(B2C, afterFinal, 'UNEXPECTED_CONTINUATION', [msg(1, 1)]);
  });

  it('rejects a new data frame inside a fragmented message (RFC 6455 §5.4)', () => {
    for (const opcode of [1, 2]) {
      const data = Buffer.concat([
        encodeFrame({ opcode: 1, fin: false, payload: 'a' }),
        encodeFrame({ opcode: 9 }),
        encodeFrame({ opcode, payload: 'b' }),
      ]);
      assertViolation(B2C, data, 'EXPECTED_CONTINUATION', [ctl(9, 0)], `opcode ${opcode}`);
    }
  });

  it('rejects a 64-bit length with the most significant bit set or above 2^53-1 (RFC 6455 §5.2)', () => {
    assertViolation(B2C, encodeFrame({ opcode: 2, declaredLength: 2n ** 63n }), 'BAD_LENGTH');
    assertViolation(B2C, encodeFrame({ opcode: 2, declaredLength: 2n ** 64n - 1n }), 'BAD_LENGTH');
    assertViolation(C2B, encodeFrame({ opcode: 2, declaredLength: 2n ** 53n, masked: true }), 'BAD_LENGTH');
    const r = run(B2C, [encodeFrame({ opcode: 2, declaredLength: 2n ** 63n })]);
    assert.match(r.failure?.detail ?? '', /most significant bit/);
  });

  it('rejects a fragmented message whose total length passes 2^53-1', () => {
    const data = Buffer.concat([
      encodeFrame({ opcode: 2, fin: false, payload: 'ab' }),
      encodeFrame({ opcode: 0, fin: false, declaredLength: 2n ** 53n - 3n }),
    ]);
    // 2 + (2^53 - 3) = 2^53 - 1 still fits; the header alone is accepted.
    assert.equal(run(B2C, [data]).failure, undefined);
    const over = Buffer.concat([
      encodeFrame({ opcode: 2, fin: false, payload: 'ab' }),
      encodeFrame({ opcode: 0, declaredLength: 2n ** 53n - 2n }),
    ]);
    assertViolation(B2C, over, 'BAD_LENGTH');
  });
});

describe('FrameScanner: close frames (RFC 6455 §5.5.1, §7.4)', () => {
  it('parses a masked close with code and reason from the client', () => {
    const frame = encodeFrame({ opcode: 8, payload: closePayload(1001, 'going away ✓'), masked: true });
    assertValid(C2B, frame, [close(1001, 'going away ✓')]);
    const r = run(C2B, [frame]);
    assert.equal(r.scanner.closeSeen, true);
  });

  it('parses an unmasked close from the backend, a code without reason, and an empty close', () => {
    assertValid(B2C, encodeFrame({ opcode: 8, payload: closePayload(4999, 'x'.repeat(123)) }), [
      close(4999, 'x'.repeat(123)),
    ]);
    assertValid(B2C, hex('880203e8'), [close(1000, '')]);
    assertValid(B2C, hex('8800'), [close(undefined, '')]);
    assertValid(C2B, encodeFrame({ opcode: 8, masked: true }), [close(undefined, '')]);
  });

  it('reports the close only once its payload has arrived', () => {
    const frame = encodeFrame({ opcode: 8, payload: closePayload(1000, 'bye'), masked: true });
    const trace: ScanEvent[] = [];
    const scanner = new FrameScanner(C2B, recordEvents(trace));
    scanner.push(frame.subarray(0, frame.length - 1));
    assert.deepEqual(trace, []);
    assert.equal(scanner.closeSeen, false);
    assert.equal(scanner.atBoundary, false);
    scanner.push(frame.subarray(frame.length - 1));
    assert.deepEqual(trace, [close(1000, 'bye')]);
    assert.equal(scanner.closeSeen, true);
    assert.equal(scanner.atBoundary, true);
  });

  it('accepts every code a peer may send', () => {
    for (const code of [1000, 1003, 1007, 1011, 1014, 3000, 4999]) {
      assertValid(
        B2C,
        encodeFrame({ opcode: 8, payload: closePayload(code) }),
        [close(code, '')],
        `code ${code}`,
      );
    }
  });

  it('rejects a 1-byte payload', () => {
    assertViolation(B2C, hex('880103'), 'BAD_CLOSE_PAYLOAD');
    assert.match(run(B2C, [hex('880103')]).failure?.detail ?? '', /1 byte/);
    assertViolation(
      C2B,
      encodeFrame({ opcode: 8, payload: Uint8Array.of(3), masked: true }),
      'BAD_CLOSE_PAYLOAD',
    );
  });

  it('rejects codes that may not be sent on the wire', () => {
    for (const code of [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65_535]) {
      assertViolation(
        C2B,
        encodeFrame({ opcode: 8, payload: closePayload(code), masked: true }),
        'BAD_CLOSE_PAYLOAD',
        [],
        `code ${code}`,
      );
    }
  });

  it('rejects a reason that is not valid UTF-8', () => {
    for (const bad of ['ff', 'c080', 'eda080', 'e282', 'f4908080', '41c3']) {
      assertViolation(
        B2C,
        encodeFrame({ opcode: 8, payload: closePayload(1000, hex(bad)) }),
        'BAD_CLOSE_PAYLOAD',
        [],
        `reason ${bad}, backend to client`,
      );
      assertViolation(
        C2B,
        encodeFrame({ opcode: 8, payload: closePayload(1000, hex(bad)), masked: true }),
        'BAD_CLOSE_PAYLOAD',
        [],
        `reason ${bad}, client to backend`,
      );
    }
  });

  it('unmasks the close payload with whatever key the client chose', () => {
    for (const maskKey of [hex('00000000'), hex('ffffffff'), hex('01020304')]) {
      const frame = encodeFrame({ opcode: 8, payload: closePayload(3003, 'é'), masked: true, maskKey });
      assertValid(C2B, frame, [close(3003, 'é')], `mask key ${maskKey.toString('hex')}`);
    }
  });

  it('rejects anything after a close frame, even a single byte', () => {
    const closeFrame = encodeFrame({ opcode: 8, payload: closePayload(1000) });
    assertViolation(
      B2C,
      Buffer.concat([closeFrame, encodeFrame({ opcode: 1, payload: 'late' })]),
      'DATA_AFTER_CLOSE',
      [close(1000, '')],
    );
    assertViolation(B2C, Buffer.concat([closeFrame, hex('00')]), 'DATA_AFTER_CLOSE', [close(1000, '')]);
    assertViolation(B2C, Buffer.concat([closeFrame, closeFrame]), 'DATA_AFTER_CLOSE', [close(1000, '')]);
  });
});

describe('FrameScanner: boundaries', () => {
  function failure(result: ScanResult): { violation: string; boundary: number } {
    assert.equal(result.ok, false);
    return result.ok
      ? { violation: '', boundary: NaN }
      : { violation: result.violation, boundary: result.boundary };
  }

  it('points at the offending frame when it is not the first in the chunk', () => {
    const first = encodeFrame({ opcode: 1, payload: 'hello', masked: true });
    const second = encodeFrame({ opcode: 1, payload: 'x' });
    const scanner = new FrameScanner(C2B, recordEvents([]));
    assert.deepEqual(failure(scanner.push(Buffer.concat([first, second]))), {
      violation: 'BAD_MASK',
      boundary: first.length,
    });
  });

  it('says -1 when the offending header began in an earlier chunk', () => {
    const data = Buffer.concat([hex('810161'), hex('0301')]);
    const scanner = new FrameScanner(B2C, recordEvents([]));
    assert.equal(scanner.push(data.subarray(0, 4)).ok, true);
    assert.deepEqual(failure(scanner.push(data.subarray(4))), { violation: 'BAD_OPCODE', boundary: -1 });
    assert.equal(scanner.atBoundary, false);
  });

  it('points at the close header when its payload is bad', () => {
    const text = encodeFrame({ opcode: 1, payload: 'abc' });
    const bad = encodeFrame({ opcode: 8, payload: closePayload(1005) });
    const scanner = new FrameScanner(B2C, recordEvents([]));
    assert.deepEqual(failure(scanner.push(Buffer.concat([text, bad]))), {
      violation: 'BAD_CLOSE_PAYLOAD',
      boundary: text.length,
    });
    assert.equal(scanner.atBoundary, true);

    const split = new FrameScanner(B2C, recordEvents([]));
    assert.equal(split.push(Buffer.concat([text, bad.subarray(0, 3)])).ok, true);
    assert.deepEqual(failure(split.push(bad.subarray(3))), { violation: 'BAD_CLOSE_PAYLOAD', boundary: -1 });
    assert.equal(split.atBoundary, false);
  });

  it('points at the first byte after the close frame', () => {
    const closeFrame = encodeFrame({ opcode: 8, payload: closePayload(1000), masked: true });
    const scanner = new FrameScanner(C2B, recordEvents([]));
    assert.equal(scanner.push(closeFrame.subarray(0, 5)).ok, true);
    assert.deepEqual(failure(scanner.push(Buffer.concat([closeFrame.subarray(5), hex('81')]))), {
      violation: 'DATA_AFTER_CLOSE',
      boundary: closeFrame.length - 5,
    });
  });

  it('repeats the violation with boundary -1 and fires no more events', () => {
    const trace: ScanEvent[] = [];
    const scanner = new FrameScanner(B2C, recordEvents(trace));
    const first = scanner.push(hex('8100 8f00 8100'));
    assert.deepEqual(first, {
      ok: false,
      violation: 'BAD_OPCODE',
      detail: 'reserved opcode 0xf',
      boundary: 2,
    });
    const again = scanner.push(hex('8100'));
    assert.deepEqual(again, {
      ok: false,
      violation: 'BAD_OPCODE',
      detail: 'reserved opcode 0xf',
      boundary: -1,
    });
    assert.equal(scanner.push(Buffer.alloc(0)), again);
    assert.deepEqual(trace, [msg(1, 0)]);
  });

  it('tracks atBoundary through header, extended length, mask key and payload splits', () => {
    const frame = encodeFrame({ opcode: 2, payload: Buffer.alloc(300, 7), masked: true });
    // 2 base bytes + 2 length bytes + 4 key bytes = 8 header bytes, then 300 payload bytes.
    assert.equal(frame.length, 308);
    const scanner = new FrameScanner(C2B, recordEvents([]));
    assert.equal(scanner.atBoundary, true);
    const cuts = [1, 2, 3, 4, 6, 8, 9, 200, 307, 308];
    let start = 0;
    for (const cut of cuts) {
      assert.equal(scanner.push(frame.subarray(start, cut)).ok, true, `push up to ${cut} bytes`);
      assert.equal(scanner.atBoundary, cut === 308, `after ${cut} bytes`);
      start = cut;
    }
  });

  it('is at a boundary right after a frame with an empty payload, and not inside a short one', () => {
    const scanner = new FrameScanner(B2C, recordEvents([]));
    scanner.push(hex('8900'));
    assert.equal(scanner.atBoundary, true);
    scanner.push(hex('8a0261'));
    assert.equal(scanner.atBoundary, false);
    scanner.push(hex('62'));
    assert.equal(scanner.atBoundary, true);
  });
});
