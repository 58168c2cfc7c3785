/**
 * What a frame scanner is told and what it tells (frame-scanner.ts): the direction it reads, the
 * protocol rules a stream can break, the events it reports as frames go by (and the verdicts those
 * events may return: a limit's veto or WAIT), and the result of each pushed chunk.
 */
import type { Veto, Wait } from './verdict.ts';

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
  | 'DATA_AFTER_CLOSE'
  /** A compressed message that does not inflate (RFC 7692 §7.2.2: fail the connection). */
  | 'BAD_COMPRESSED_DATA'
  /**
   * Not a protocol rule: a limit of the route vetoed a data frame (the result carries the veto).
   * Unlike a violation it is not final: later pushes scan on (and may report their own).
   */
  | 'LIMIT';

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
   * A data frame's header completed (before any of its payload is passed on): `first` when it
   * opens a message, `fin` when it ends one, `frameBytes` its payload length, `messageBytes` the
   * message's payload so far including this frame. A veto stops the stream at this frame's start,
   * like a violation, but scanning goes on. {@link WAIT} stops the scan before this frame, as if
   * the stream had ended at its start (see {@link FrameScanner.waitAt}): the caller puts the rest
   * back and pushes it again later. Called before {@link onMessage} for a final frame.
   */
  onDataFrame?(
    first: boolean,
    fin: boolean,
    frameBytes: number,
    messageBytes: number,
    compressed: boolean,
  ): Veto | Wait | undefined;
  /**
   * While {@link FrameScanner.inspectPayload} is set: payload bytes [start, end) of the current
   * data frame are in `chunk` (`last`: its payload ends there; called with start = end for an
   * empty frame). {@link FrameScanner.unmaskedCopy} reads them during the call.
   */
  onPayload?(chunk: Buffer, start: number, end: number, last: boolean): void;
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
  /**
   * While {@link FrameScanner.capturePongs} is set: a pong frame was fully received; `payload` is
   * its unmasked payload (valid only during the call), `frameStart` where the frame began in the
   * pushed chunk (-1: in an earlier chunk) and `frameEnd` where it ended.
   */
  onPong?(payload: Buffer, frameStart: number, frameEnd: number): void;
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
      /** Set when `violation` is 'LIMIT': what the limit decided. */
      readonly veto?: Veto;
    };
