/**
 * Incremental RFC 6455 §5.2 frame-header scanner for one direction of a tunnel. The tunnel forwards
 * every byte unchanged; the scanner only watches the stream go by so that the gateway can count
 * messages and bytes, enforce limits and protocol rules when a header completes, and know when a
 * frame boundary is reached (the only place where it may inject a frame of its own).
 *
 * Memory is bounded: at most 14 header bytes, plus the payload of a close frame (at most 125 bytes),
 * which is unmasked and parsed, and, while the gateway waits for the answer to its own ping, that of
 * a pong. Other payloads are never copied, only counted, so a chunk that lies inside a payload costs
 * O(1). `heldBytes` says how many bytes at the end of the stream belong to a frame whose header (or
 * whole control frame, for those it parses) is not complete yet: the relay holds those back, so
 * that every verdict falls on a frame boundary of what was forwarded. Verdicts depend only on the bytes, never on how they were split into
 * chunks, and no input makes the scanner throw.
 */

import { isUtf8 } from 'node:buffer';
import { isValidCloseCode } from './close-frame.ts';
import type { ScannerEvents, ScannerOptions, ScanResult, ViolationCode } from './scan-types.ts';
import { WAIT, type Wait } from './verdict.ts';

export type { Direction, ScannerEvents, ScannerOptions, ScanResult, ViolationCode } from './scan-types.ts';

type Violation = Extract<ScanResult, { ok: false }>;

const OK: ScanResult = Object.freeze({ ok: true });
const EMPTY = Buffer.alloc(0);

const FIN = 0x80;
const RSV_BITS = 0x70;
/** The bit permessage-deflate sets on a compressed message's first frame (RFC 7692 §6). */
const RSV1 = 0x40;
const OPCODE_BITS = 0x0f;
const MASK = 0x80;
const LENGTH_BITS = 0x7f;
const OP_CONTINUATION = 0x0;
const OP_CLOSE = 0x8;
const OP_PING = 0x9;
const OP_PONG = 0xa;
/** The largest 7-bit length; 126 and 127 announce a 16-bit and a 64-bit length (RFC 6455 §5.2). */
const MAX_SHORT_LENGTH = 125;
const LENGTH_16 = 126;
/** 2^53-1 is the high 32-bit word 0x1fffff followed by 0xffffffff. */
const MAX_SAFE_HIGH_WORD = 0x1fffff;
const TWO_POW_32 = 0x1_0000_0000;

/** The unsigned big-endian integer in `count` (at most 4) bytes of `bytes` from `at`. */
function bigEndian(bytes: readonly number[], at: number, count: number): number {
  let value = 0;
  for (let k = 0; k < count; k++) value = value * 256 + (bytes[at + k] ?? 0);
  return value;
}

/**
 * Watches one direction of a WebSocket stream, frame header by frame header. Feed it every chunk,
 * in order, with {@link push}; act on the returned verdict.
 */
export class FrameScanner {
  readonly #events: ScannerEvents;
  readonly #masked: boolean;
  readonly #allowedRsv: number;

  /**
   * The header of the frame being received; at most 2 + 8 (length) + 4 (mask key) bytes. A plain
   * array of small integers: a 14-byte Buffer costs two heap objects and a native backing store
   * per scanner, two scanners per open connection.
   */
  readonly #header: number[] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
  #headerLength = 0;
  /** Bytes the current header needs; known once its first 2 bytes are in. */
  #headerNeed = 2;
  /** Payload bytes of the current (non-close) frame still to come. */
  #payloadLeft = 0;

  /** Payload of the control frame being parsed (close, or a captured pong); allocated on first use. */
  #closePayload: Buffer | undefined;
  #closeLength = 0;
  #closeNeed = 0;
  /** Opcode of the control frame whose payload is being taken (OP_CLOSE or OP_PONG), 0 when none. */
  #controlOpcode = 0;
  /** Header length of that control frame (2, or 6 when masked). */
  #controlHeaderBytes = 0;
  #closeSeen = false;
  /** Parse pongs whole and report them with onPong (set while a gateway ping awaits its answer). */
  capturePongs = false;
  /** Stop the scan where the next frame begins, as for WAIT (set while a gateway close waits for a boundary). */
  stopAtBoundary = false;
  /** Report data payloads with onPayload (set while the inflated size of messages is counted). */
  inspectPayload = false;
  /** Whether the payload being received belongs to a data frame (not a ping or pong). */
  #frameIsData = false;
  #frameFin = false;
  /** Whether the message in progress has RSV1 (permessage-deflate) on its first frame. */
  #messageCompressed = false;
  /** Where the current frame's mask key sits in the header, -1 when it is not masked. */
  #maskAt = -1;
  /** Payload bytes of the current frame seen before the current segment. */
  #payloadPos = 0;
  /** Data frame payload bytes seen so far (progress inside a long frame is activity too). */
  #dataBytes = 0;

  /** Opcode of the fragmented data message in progress, 0 when none. */
  #messageOpcode: 0 | 1 | 2 = 0;
  /** Payload bytes of the message in progress so far. */
  #messageBytes = 0;

  /** Offset in the current chunk where the frame being received began, -1 if in an earlier chunk. */
  #frameStart = -1;
  /**
   * Where the last push stopped for a {@link WAIT}: the offset in the chunk where the waiting frame
   * began (-1: in an earlier chunk); undefined when it did not stop.
   */
  #waitAt: number | undefined;

  /**
   * The first veto of the current push. A veto does not stop the scanning (the stream goes on
   * being read, so that the sender's close frame is still seen); the push returns it.
   */
  #vetoed: Violation | undefined;
  /** Once set, the stream is rejected for good and every push returns it. */
  #failed: Violation | undefined;
  #boundaryAtFailure = false;

  /** @param options direction and negotiated RSV bits; @param events receives what goes by. */
  constructor(options: ScannerOptions, events: ScannerEvents) {
    this.#events = events;
    this.#masked = options.direction === 'client_to_backend';
    this.#allowedRsv = options.allowedRsv & RSV_BITS;
  }

  /**
   * True when no frame is partially received (no header bytes held, no payload outstanding). The
   * gateway injects frames only then. After a violation: true when the bytes safe to forward end
   * at a frame boundary (the violation's first `boundary` was not -1).
   */
  get atBoundary(): boolean {
    if (this.#failed !== undefined) return this.#boundaryAtFailure;
    return this.#headerLength === 0 && this.#payloadLeft === 0 && this.#closeLength === this.#closeNeed;
  }

  /**
   * Bytes at the end of the stream so far that belong to an incomplete header, or to a control
   * frame being parsed (header included): not safe to pass on yet. 0 inside a data payload.
   */
  get heldBytes(): number {
    if (this.#failed !== undefined) return 0;
    if (this.#closeLength < this.#closeNeed) return this.#controlHeaderBytes + this.#closeLength;
    return this.#headerLength;
  }

  /** True while the payload of a data frame (or an uncaptured ping or pong) is still to come. */
  get midPayload(): boolean {
    return this.#failed === undefined && this.#payloadLeft > 0;
  }

  /** Where the last push stopped before a frame that must wait (see {@link WAIT}), if it did. */
  get waitAt(): number | undefined {
    return this.#waitAt;
  }

  /** True once a close frame has been fully seen in this direction. */
  get closeSeen(): boolean {
    return this.#closeSeen;
  }

  /**
   * Feeds the next chunk of the stream. After a violation, every later push returns the same
   * violation (with boundary -1) and fires no events.
   */
  push(chunk: Buffer): ScanResult {
    if (this.#failed !== undefined) return this.#failed;
    this.#vetoed = undefined;
    this.#waitAt = undefined;
    const result = this.#scan(chunk);
    return this.#vetoed ?? result;
  }

  #scan(chunk: Buffer): ScanResult {
    const end = chunk.length;
    let i = 0;
    this.#frameStart = -1;
    while (i < end) {
      if (this.#payloadLeft > 0) {
        // Payload bytes are only counted: a chunk inside a payload costs O(1).
        const available = end - i;
        if (this.#frameIsData) {
          this.#dataBytes += Math.min(available, this.#payloadLeft);
          if (this.inspectPayload) this.#reportPayload(chunk, i, available);
        }
        if (available <= this.#payloadLeft) {
          this.#payloadLeft -= available;
          return OK;
        }
        i += this.#payloadLeft;
        this.#payloadLeft = 0;
        continue;
      }

      if (this.#closeLength < this.#closeNeed) {
        i = this.#takeClosePayload(chunk, i);
        if (this.#closeLength === this.#closeNeed) {
          const violation = this.#finishControl(i);
          if (violation !== undefined) return violation;
        }
        continue;
      }

      if (this.#headerLength === 0) {
        // RFC 6455 §5.5.1: the close frame is the last frame an endpoint sends.
        if (this.#closeSeen) {
          return this.#fail('DATA_AFTER_CLOSE', 'bytes follow a close frame', i);
        }
        if (this.stopAtBoundary) {
          this.#waitAt = i; // the gateway's close frame goes here
          return OK;
        }
        this.#frameStart = i;
      }

      if (this.#headerLength < 2) {
        while (this.#headerLength < 2 && i < end) this.#header[this.#headerLength++] = chunk[i++] ?? 0;
        if (this.#headerLength < 2) break;
        const violation = this.#checkBaseHeader();
        if (violation !== undefined) return violation;
      }

      const need = this.#headerNeed;
      while (this.#headerLength < need && i < end) this.#header[this.#headerLength++] = chunk[i++] ?? 0;
      if (this.#headerLength < need) break;
      const violation = this.#completeHeader(chunk, i);
      if (violation === WAIT) return OK;
      if (violation !== undefined) return violation;
    }
    return OK;
  }

  /** Checks the first 2 header bytes and works out the header's full size. */
  #checkBaseHeader(): Violation | undefined {
    const b0 = this.#header[0] ?? 0;
    const b1 = this.#header[1] ?? 0;
    const opcode = b0 & OPCODE_BITS;
    const rsv = b0 & RSV_BITS;
    const length7 = b1 & LENGTH_BITS;
    const isControl = opcode >= OP_CLOSE;

    if ((opcode > 0x2 && opcode < OP_CLOSE) || opcode > OP_PONG) {
      return this.#fail('BAD_OPCODE', `reserved opcode 0x${opcode.toString(16)}`, this.#frameStart);
    }
    if (rsv !== 0) {
      // Extensions may only flag the first frame of a data message (RFC 7692 §6 for RSV1).
      if (isControl || opcode === OP_CONTINUATION) {
        return this.#fail(
          'RESERVED_BITS',
          `RSV bits 0x${rsv.toString(16)} on opcode 0x${opcode.toString(16)}`,
          this.#frameStart,
        );
      }
      if ((rsv & ~this.#allowedRsv) !== 0) {
        return this.#fail('RESERVED_BITS', `RSV bits 0x${rsv.toString(16)} not negotiated`, this.#frameStart);
      }
    }
    if (isControl) {
      // RFC 6455 §5.5: control frames are never fragmented and carry at most 125 bytes.
      if ((b0 & FIN) === 0) {
        return this.#fail(
          'BAD_CONTROL_FRAME',
          `fragmented control frame 0x${opcode.toString(16)}`,
          this.#frameStart,
        );
      }
      if (length7 > MAX_SHORT_LENGTH) {
        return this.#fail(
          'BAD_CONTROL_FRAME',
          `control frame 0x${opcode.toString(16)} longer than 125 bytes`,
          this.#frameStart,
        );
      }
    } else if (opcode === OP_CONTINUATION) {
      if (this.#messageOpcode === 0) {
        return this.#fail(
          'UNEXPECTED_CONTINUATION',
          'continuation frame with no message in progress',
          this.#frameStart,
        );
      }
    } else if (this.#messageOpcode !== 0) {
      return this.#fail(
        'EXPECTED_CONTINUATION',
        `opcode 0x${opcode.toString(16)} inside a fragmented message`,
        this.#frameStart,
      );
    }
    // RFC 6455 §5.1: clients mask every frame, servers never do.
    if (((b1 & MASK) !== 0) !== this.#masked) {
      return this.#fail(
        'BAD_MASK',
        this.#masked ? 'unmasked frame from the client' : 'masked frame from the backend',
        this.#frameStart,
      );
    }

    const lengthBytes = length7 === LENGTH_16 ? 2 : length7 > LENGTH_16 ? 8 : 0;
    this.#headerNeed = 2 + lengthBytes + (this.#masked ? 4 : 0);
    return undefined;
  }

  /** Acts on a complete header (ending at `end` in the chunk): reports the frame, sets up its payload. */
  #completeHeader(chunk: Buffer, end: number): Violation | Wait | undefined {
    const header = this.#header;
    const b0 = header[0] ?? 0;
    const opcode = b0 & OPCODE_BITS;
    const fin = (b0 & FIN) !== 0;
    const length7 = (header[1] ?? 0) & LENGTH_BITS;
    let length = length7;
    if (length7 === LENGTH_16) {
      length = bigEndian(header, 2, 2);
    } else if (length7 > LENGTH_16) {
      const high = bigEndian(header, 2, 4);
      // RFC 6455 §5.2: the most significant bit must be 0; above 2^53-1 lengths lose precision.
      if (high > MAX_SAFE_HIGH_WORD) {
        const why = high >= 0x8000_0000 ? 'most significant bit set' : 'above 2^53-1';
        return this.#fail('BAD_LENGTH', `64-bit payload length ${why}`, this.#frameStart);
      }
      length = high * TWO_POW_32 + bigEndian(header, 6, 4);
    }

    const headerBytes = this.#headerNeed;
    this.#headerLength = 0;
    this.#headerNeed = 2;

    const captured = opcode === OP_CLOSE || (opcode === OP_PONG && this.capturePongs);
    if (captured) {
      if (opcode === OP_PONG) this.#events.onControl(opcode, length);
      this.#controlOpcode = opcode;
      this.#controlHeaderBytes = headerBytes;
      this.#closeLength = 0;
      this.#closeNeed = length;
      if (length === 0) return this.#finishControl(end);
      return undefined;
    }

    if (opcode === OP_PING || opcode === OP_PONG) {
      this.#payloadLeft = length;
      this.#frameIsData = false;
      this.#events.onControl(opcode, length);
      return undefined;
    }

    const first = opcode !== OP_CONTINUATION;
    const compressed = first ? (b0 & RSV1) !== 0 : this.#messageCompressed;
    const bytes = first ? length : this.#messageBytes + length;
    if (bytes > Number.MAX_SAFE_INTEGER) {
      return this.#fail('BAD_LENGTH', 'message length above 2^53-1', this.#frameStart);
    }
    const veto = this.#events.onDataFrame?.(first, fin, length, bytes, compressed);
    if (veto === WAIT) {
      this.#waitAt = this.#frameStart; // the header state is already back at a frame boundary
      return WAIT;
    }
    if (veto !== undefined && this.#vetoed === undefined) {
      this.#vetoed = Object.freeze({
        ok: false,
        violation: 'LIMIT',
        detail: veto.detail,
        boundary: this.#frameStart,
        veto,
      });
    }
    this.#payloadLeft = length;
    this.#frameIsData = true;
    this.#frameFin = fin;
    this.#messageCompressed = compressed;
    this.#maskAt = this.#masked ? headerBytes - 4 : -1;
    this.#payloadPos = 0;
    if (length === 0 && this.inspectPayload) this.#events.onPayload?.(chunk, end, end, true);
    const messageOpcode = first ? (opcode === 1 ? 1 : 2) : this.#messageOpcode === 1 ? 1 : 2;
    if (fin) {
      this.#messageOpcode = 0;
      this.#messageBytes = 0;
      this.#events.onMessage(messageOpcode, bytes);
    } else {
      this.#messageOpcode = messageOpcode;
      this.#messageBytes = bytes;
    }
    return undefined;
  }

  /** Reports the payload bytes of the current data frame that lie in `chunk` from `start`. */
  #reportPayload(chunk: Buffer, start: number, available: number): void {
    const take = Math.min(available, this.#payloadLeft);
    this.#events.onPayload?.(chunk, start, start + take, take === this.#payloadLeft);
    this.#payloadPos += take;
  }

  /** During onPayload: a copy of payload bytes [start, end) of `chunk`, unmasked. */
  unmaskedCopy(chunk: Buffer, start: number, end: number): Buffer {
    const copy = Buffer.allocUnsafe(end - start);
    chunk.copy(copy, 0, start, end);
    const at = this.#maskAt;
    if (at < 0) return copy;
    const header = this.#header;
    const position = this.#payloadPos;
    for (let j = 0; j < copy.length; j++) copy[j] = (copy[j] ?? 0) ^ (header[at + ((position + j) & 3)] ?? 0);
    return copy;
  }

  /** Data frame payload bytes seen so far in this direction. */
  get dataBytes(): number {
    return this.#dataBytes;
  }

  /** Whether the message in progress is compressed (RSV1 on its first frame). */
  get messageCompressed(): boolean {
    return this.#messageCompressed;
  }

  /** Whether the current data frame ends its message. */
  get frameFin(): boolean {
    return this.#frameFin;
  }

  /** Where the frame being received began in the current chunk (-1: in an earlier chunk). */
  get frameStart(): number {
    return this.#frameStart;
  }

  /** Copies close payload bytes from `chunk` starting at `start`; returns where it stopped. */
  #takeClosePayload(chunk: Buffer, start: number): number {
    if (this.#closePayload === undefined) this.#closePayload = Buffer.alloc(MAX_SHORT_LENGTH);
    const take = Math.min(this.#closeNeed - this.#closeLength, chunk.length - start);
    chunk.copy(this.#closePayload, this.#closeLength, start, start + take);
    this.#closeLength += take;
    return start + take;
  }

  /** A captured control frame's payload is complete (the frame ends at `end` in the chunk). */
  #finishControl(end: number): Violation | undefined {
    const length = this.#closeNeed;
    this.#closeNeed = 0;
    this.#closeLength = 0;
    const payload = length === 0 ? EMPTY : (this.#closePayload ?? EMPTY);
    if (this.#masked) {
      // A control frame always has a 7-bit length (§5.5), so its mask key sits at header bytes 2-5 (§5.3).
      const header = this.#header;
      for (let j = 0; j < length; j++) {
        payload[j] = (payload[j] ?? 0) ^ (header[2 + (j & 3)] ?? 0);
      }
    }
    if (this.#controlOpcode === OP_PONG) {
      this.#events.onPong?.(payload.subarray(0, length), this.#frameStart, end);
      return undefined;
    }
    return this.#finishClose(payload, length);
  }

  /** Parses the complete, unmasked close payload (RFC 6455 §5.5.1), then reports it. */
  #finishClose(payload: Buffer, length: number): Violation | undefined {
    if (length === 0) {
      this.#closeSeen = true;
      this.#events.onClose(undefined, '');
      return undefined;
    }
    if (length === 1) {
      return this.#fail('BAD_CLOSE_PAYLOAD', 'close payload of 1 byte', this.#frameStart);
    }
    const code = payload.readUInt16BE(0);
    if (!isValidCloseCode(code)) {
      return this.#fail('BAD_CLOSE_PAYLOAD', `close code ${code} may not be sent`, this.#frameStart);
    }
    // RFC 6455 §5.5.1: the reason must be valid UTF-8 (rejecting overlongs and surrogates, §8.1).
    if (!isUtf8(payload.subarray(2, length))) {
      return this.#fail('BAD_CLOSE_PAYLOAD', 'close reason is not valid UTF-8', this.#frameStart);
    }
    this.#closeSeen = true;
    this.#events.onClose(code, payload.toString('utf8', 2, length));
    return undefined;
  }

  /** Records the violation for good and returns it with the boundary for this push. */
  #fail(violation: ViolationCode, detail: string, boundary: number): Violation {
    this.#failed = Object.freeze({ ok: false, violation, detail, boundary: -1 });
    this.#boundaryAtFailure = boundary >= 0;
    return Object.freeze({ ok: false, violation, detail, boundary });
  }
}
