/**
 * Incremental RFC 6455 §5.2 frame-header scanner for one direction of a tunnel. The tunnel forwards
 * every byte unchanged; the scanner only watches the stream go by so that the gateway can count
 * messages and bytes, enforce limits and protocol rules when a header completes, and know when a
 * frame boundary is reached (the only place where it may inject a frame of its own).
 *
 * Memory is bounded: at most 14 header bytes, plus the payload of a close frame (at most 125 bytes),
 * which is unmasked and parsed. Other payloads are never copied, only counted, so a chunk that lies
 * inside a payload costs O(1). Verdicts depend only on the bytes, never on how they were split into
 * chunks, and no input makes the scanner throw.
 */

import { isUtf8 } from 'node:buffer';
import { isValidCloseCode } from './close-frame.ts';

/** Which way the scanned bytes flow; decides whether frames must be masked (RFC 6455 §5.1). */
export type Direction = 'client_to_backend' | 'backend_to_client';

/** The protocol rule a stream broke. */
export type ViolationCode =
  /** An RSV bit not negotiated, or any RSV bit on a control or continuation frame (RFC 7692 §6). */
  | 'RESERVED_BITS'
  /** A reserved opcode: 0x3-0x7 or 0xB-0xF (RFC 6455 §5.2). */
  | 'BAD_OPCODE'
  /** A client-to-backend frame without a mask, or a backend-to-client frame with one (RFC 6455 §5.1). */
  | 'BAD_MASK'
  /** A fragmented control frame, or one with a payload over 125 bytes (RFC 6455 §5.5). */
  | 'BAD_CONTROL_FRAME'
  /** A continuation frame with no fragmented message in progress (RFC 6455 §5.4). */
  | 'UNEXPECTED_CONTINUATION'
  /** A new text or binary frame while a fragmented message is in progress (RFC 6455 §5.4). */
  | 'EXPECTED_CONTINUATION'
  /** A 64-bit length with its most significant bit set or above 2^53-1 (RFC 6455 §5.2). */
  | 'BAD_LENGTH'
  /** A 1-byte close payload, a close code that may not be sent (§7.4) or a reason that is not UTF-8 (§5.5.1). */
  | 'BAD_CLOSE_PAYLOAD'
  /** Any byte after a close frame in the same direction (RFC 6455 §5.5.1). */
  | 'DATA_AFTER_CLOSE';

/** How one direction of a tunnel is scanned. */
export interface ScannerOptions {
  readonly direction: Direction;
  /**
   * Bitmask of RSV bits the negotiated extensions allow on the first frame of a data message:
   * 0x40 = RSV1 (permessage-deflate), 0x20 = RSV2, 0x10 = RSV3. 0 = none.
   */
  readonly allowedRsv: number;
}

/** What the scanner reports as frames go by. Called synchronously from {@link FrameScanner.push}. */
export interface ScannerEvents {
  /**
   * A data message completed: called when the header of its final frame (FIN=1) is complete;
   * `bytes` = sum of payload lengths of all its frames (on-the-wire size). opcode is 1 (text) or
   * 2 (binary) = the first frame's opcode.
   */
  onMessage(opcode: 1 | 2, bytes: number): void;
  /** A ping (9) or pong (10) header completed. */
  onControl(opcode: 9 | 10, payloadBytes: number): void;
  /**
   * A close frame was fully received and parsed (after its payload arrived). code is undefined for
   * an empty payload (then reason is '').
   */
  onClose(code: number | undefined, reason: string): void;
}

/** The verdict on one pushed chunk. */
export type ScanResult =
  | { readonly ok: true }
  | {
      readonly ok: false;
      readonly violation: ViolationCode;
      /** Human-readable specifics for the log; never branch on it. */
      readonly detail: string;
      /**
       * Offset in the pushed chunk where the offending frame's header begins: bytes before it are
       * whole frames, safe to forward; -1 when that header began in an earlier chunk.
       */
      readonly boundary: number;
    };

type Violation = Extract<ScanResult, { ok: false }>;

const OK: ScanResult = Object.freeze({ ok: true });

const FIN = 0x80;
const RSV_BITS = 0x70;
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

/**
 * Watches one direction of a WebSocket stream, frame header by frame header. Feed it every chunk,
 * in order, with {@link push}; act on the returned verdict.
 */
export class FrameScanner {
  readonly #events: ScannerEvents;
  readonly #masked: boolean;
  readonly #allowedRsv: number;

  /** The header of the frame being received; at most 2 + 8 (length) + 4 (mask key) bytes. */
  readonly #header = Buffer.alloc(14);
  #headerLength = 0;
  /** Bytes the current header needs; known once its first 2 bytes are in. */
  #headerNeed = 2;
  /** Payload bytes of the current (non-close) frame still to come. */
  #payloadLeft = 0;

  /** Payload of the close frame being received; allocated on the first close frame that has one. */
  #closePayload: Buffer | undefined;
  #closeLength = 0;
  #closeNeed = 0;
  #closeSeen = false;

  /** Opcode of the fragmented data message in progress, 0 when none. */
  #messageOpcode: 0 | 1 | 2 = 0;
  /** Payload bytes of the message in progress so far. */
  #messageBytes = 0;

  /** Offset in the current chunk where the frame being received began, -1 if in an earlier chunk. */
  #frameStart = -1;
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
    const end = chunk.length;
    let i = 0;
    this.#frameStart = -1;
    while (i < end) {
      if (this.#payloadLeft > 0) {
        // Payload bytes are only counted: a chunk inside a payload costs O(1).
        const available = end - i;
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
          const violation = this.#finishClose();
          if (violation !== undefined) return violation;
        }
        continue;
      }

      if (this.#headerLength === 0) {
        // RFC 6455 §5.5.1: the close frame is the last frame an endpoint sends.
        if (this.#closeSeen) {
          return this.#fail('DATA_AFTER_CLOSE', 'bytes follow a close frame', i);
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
      const violation = this.#completeHeader();
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

  /** Acts on a complete header: counts the frame, reports it, and sets up its payload. */
  #completeHeader(): Violation | undefined {
    const header = this.#header;
    const b0 = header[0] ?? 0;
    const opcode = b0 & OPCODE_BITS;
    const fin = (b0 & FIN) !== 0;
    const length7 = (header[1] ?? 0) & LENGTH_BITS;
    let length = length7;
    if (length7 === LENGTH_16) {
      length = header.readUInt16BE(2);
    } else if (length7 > LENGTH_16) {
      const high = header.readUInt32BE(2);
      // RFC 6455 §5.2: the most significant bit must be 0; above 2^53-1 lengths lose precision.
      if (high > MAX_SAFE_HIGH_WORD) {
        const why = high >= 0x8000_0000 ? 'most significant bit set' : 'above 2^53-1';
        return this.#fail('BAD_LENGTH', `64-bit payload length ${why}`, this.#frameStart);
      }
      length = high * TWO_POW_32 + header.readUInt32BE(6);
    }

    this.#headerLength = 0;
    this.#headerNeed = 2;

    if (opcode === OP_CLOSE) {
      this.#closeLength = 0;
      this.#closeNeed = length;
      if (length === 0) return this.#finishClose();
      return undefined;
    }

    this.#payloadLeft = length;
    if (opcode === OP_PING || opcode === OP_PONG) {
      this.#events.onControl(opcode, length);
      return undefined;
    }

    if (opcode === OP_CONTINUATION) {
      const bytes = this.#messageBytes + length;
      if (bytes > Number.MAX_SAFE_INTEGER) {
        return this.#fail('BAD_LENGTH', 'message length above 2^53-1', this.#frameStart);
      }
      if (!fin) {
        this.#messageBytes = bytes;
        return undefined;
      }
      const messageOpcode = this.#messageOpcode === 1 ? 1 : 2;
      this.#messageOpcode = 0;
      this.#messageBytes = 0;
      this.#events.onMessage(messageOpcode, bytes);
      return undefined;
    }

    const dataOpcode = opcode === 1 ? 1 : 2;
    if (fin) {
      this.#events.onMessage(dataOpcode, length);
    } else {
      this.#messageOpcode = dataOpcode;
      this.#messageBytes = length;
    }
    return undefined;
  }

  /** Copies close payload bytes from `chunk` starting at `start`; returns where it stopped. */
  #takeClosePayload(chunk: Buffer, start: number): number {
    if (this.#closePayload === undefined) this.#closePayload = Buffer.alloc(MAX_SHORT_LENGTH);
    const take = Math.min(this.#closeNeed - this.#closeLength, chunk.length - start);
    chunk.copy(this.#closePayload, this.#closeLength, start, start + take);
    this.#closeLength += take;
    return start + take;
  }

  /** Unmasks and parses the complete close payload (RFC 6455 §5.5.1), then reports it. */
  #finishClose(): Violation | undefined {
    const length = this.#closeNeed;
    this.#closeNeed = 0;
    this.#closeLength = 0;
    if (length === 0) {
      this.#closeSeen = true;
      this.#events.onClose(undefined, '');
      return undefined;
    }
    const payload = this.#closePayload ?? Buffer.alloc(0);
    if (this.#masked) {
      // A control frame always has a 7-bit length (§5.5), so its mask key sits at header bytes 2-5 (§5.3).
      const header = this.#header;
      for (let j = 0; j < length; j++) {
        payload[j] = (payload[j] ?? 0) ^ (header[2 + (j & 3)] ?? 0);
      }
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
