/**
 * Test-side WebSocket frame encoder (RFC 6455 §5.2) and an event recorder for the frame scanner.
 * The encoder can also build frames a correct peer would never send (RSV bits, reserved opcodes,
 * wrong masking, non-minimal or lying lengths) so that tests can aim at every scanner rule.
 */

import type { ScannerEvents, ScanResult } from '../../src/tunnel/frame-scanner.ts';

/** Everything about one frame; anything left out takes the value a correct peer would use. */
export interface FrameSpec {
  /** Defaults to true. */
  readonly fin?: boolean;
  /** RSV bits as they sit in the first byte: 0x40 = RSV1, 0x20 = RSV2, 0x10 = RSV3. Defaults to 0. */
  readonly rsv?: number;
  readonly opcode: number;
  /** Defaults to false. */
  readonly masked?: boolean;
  /** Strings are encoded as UTF-8. Defaults to empty. */
  readonly payload?: Uint8Array | string;
  /** The 4-byte masking key; defaults to 37 fa 21 3d (the RFC 6455 §5.7 example). */
  readonly maskKey?: Uint8Array;
  /** Forces a length encoding, even a non-minimal one; defaults to the minimal one. */
  readonly lengthBits?: 7 | 16 | 64;
  /** Writes this value in the length field instead of the payload's length (64-bit encoding). */
  readonly declaredLength?: bigint;
}

const DEFAULT_MASK_KEY = Uint8Array.of(0x37, 0xfa, 0x21, 0x3d);

/** Encodes one frame from `spec`. */
export function encodeFrame(spec: FrameSpec): Buffer {
  const payload =
    typeof spec.payload === 'string' ? Buffer.from(spec.payload, 'utf8') : Buffer.from(spec.payload ?? []);
  const masked = spec.masked ?? false;
  const declared = spec.declaredLength;
  const length = payload.length;
  const bits =
    declared !== undefined ? 64 : (spec.lengthBits ?? (length < 126 ? 7 : length < 0x10000 ? 16 : 64));
  const lengthBytes = bits === 7 ? 0 : bits === 16 ? 2 : 8;
  const header = Buffer.alloc(2 + lengthBytes + (masked ? 4 : 0));
  header[0] = ((spec.fin ?? true) ? 0x80 : 0) | ((spec.rsv ?? 0) & 0x70) | (spec.opcode & 0x0f);
  const mask = masked ? 0x80 : 0;
  if (bits === 7) {
    header[1] = mask | length;
  } else if (bits === 16) {
    header[1] = mask | 126;
    header.writeUInt16BE(length, 2);
  } else {
    header[1] = mask | 127;
    header.writeBigUInt64BE(declared ?? BigInt(length), 2);
  }
  if (!masked) return Buffer.concat([header, payload]);
  const key = spec.maskKey ?? DEFAULT_MASK_KEY;
  header.set(key.subarray(0, 4), 2 + lengthBytes);
  const body = Buffer.alloc(length);
  for (let i = 0; i < length; i++) body[i] = payload[i]! ^ key[i & 3]!;
  return Buffer.concat([header, body]);
}

/** A close payload: 2-byte code, then the reason bytes. */
export function closePayload(code: number, reason: Uint8Array | string = ''): Buffer {
  const code2 = Buffer.alloc(2);
  code2.writeUInt16BE(code);
  return Buffer.concat([code2, typeof reason === 'string' ? Buffer.from(reason, 'utf8') : reason]);
}

/** Parses hex, ignoring spaces, e.g. `hex('81 05 48656c6c6f')`. */
export function hex(text: string): Buffer {
  return Buffer.from(text.replace(/\s+/g, ''), 'hex');
}

/** One scanner event, as recorded. */
export type ScanEvent =
  | { readonly type: 'message'; readonly opcode: 1 | 2; readonly bytes: number }
  | { readonly type: 'control'; readonly opcode: 9 | 10; readonly bytes: number }
  | { readonly type: 'close'; readonly code: number | undefined; readonly reason: string };

/** Scanner events that append to `trace`. */
export function recordEvents(trace: ScanEvent[]): ScannerEvents {
  return {
    onMessage(opcode, bytes) {
      trace.push({ type: 'message', opcode, bytes });
    },
    onControl(opcode, bytes) {
      trace.push({ type: 'control', opcode, bytes });
    },
    onClose(code, reason) {
      trace.push({ type: 'close', code, reason });
    },
  };
}

/** Cuts `data` at the given offsets (unsorted, duplicates and out-of-range values allowed). */
export function splitAt(data: Buffer, cuts: readonly number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => Math.max(0, Math.min(data.length, c))))].sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let start = 0;
  for (const point of points) {
    chunks.push(data.subarray(start, point));
    start = point;
  }
  chunks.push(data.subarray(start));
  return chunks;
}

/** Cuts `data` into 1-byte chunks. */
export function bytewise(data: Buffer): Buffer[] {
  const chunks: Buffer[] = [];
  for (let i = 0; i < data.length; i++) chunks.push(data.subarray(i, i + 1));
  return chunks;
}

/** What feeding a list of chunks did: every result, the first failure and its absolute offset. */
export interface FeedOutcome {
  readonly results: ScanResult[];
  readonly failure: Extract<ScanResult, { ok: false }> | undefined;
  /** Absolute stream offset of the failing frame's start; -1 when that chunk said "earlier chunk". */
  readonly failureOffset: number | undefined;
  /** Index of the chunk whose push first failed. */
  readonly failureChunk: number | undefined;
  /** Absolute offset of the start of the chunk that first failed. */
  readonly failureChunkStart: number | undefined;
}

/** Pushes every chunk into `push` (typically `scanner.push.bind(scanner)`) and summarises the results. */
export function feed(push: (chunk: Buffer) => ScanResult, chunks: readonly Buffer[]): FeedOutcome {
  const results: ScanResult[] = [];
  let failure: FeedOutcome['failure'];
  let failureOffset: number | undefined;
  let failureChunk: number | undefined;
  let failureChunkStart: number | undefined;
  let offset = 0;
  for (const [index, chunk] of chunks.entries()) {
    const result = push(chunk);
    results.push(result);
    if (!result.ok && failure === undefined) {
      failure = result;
      failureChunk = index;
      failureChunkStart = offset;
      failureOffset = result.boundary === -1 ? -1 : offset + result.boundary;
    }
    offset += chunk.length;
  }
  return { results, failure, failureOffset, failureChunk, failureChunkStart };
}
