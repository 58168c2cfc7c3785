/**
 * One direction of a tunnel: bytes read from `source` go through a frame scanner and on to
 * `destination` unchanged. The relay owns everything that belongs to its direction: the scanner,
 * the messages and bytes relayed, whether what it wrote so far ends at a frame boundary (the only
 * place the gateway may put a frame of its own), the gateway close frame waiting for that
 * boundary, whether the destination is closed to further data, since when the destination has
 * been backed up, and why the source is paused. A pause has reasons: the source is read again
 * only when none is left, so a destination's 'drain' can never resume a socket that something
 * else (the handshake today, a rate limit tomorrow) holds.
 */
import type { Socket } from 'node:net';
import type { CloseFrame } from '../errors/codes.ts';
import type { Direction, TrafficCell } from '../observability/metrics.ts';
import { encodeCloseFrame } from './close-frame.ts';
import { FrameScanner, type ScanResult } from './frame-scanner.ts';

/** Why a relay's source is not being read. */
export type PauseReason = 'handshake' | 'backpressure';

export interface RelayOptions {
  readonly direction: Direction;
  readonly source: Socket;
  readonly destination: Socket;
  /** RSV bits the negotiated extensions allow (0x40 for permessage-deflate). */
  readonly allowedRsv: number;
  /** The route's running totals for this direction. */
  readonly cell: TrafficCell;
  /** A close frame came from the source (code undefined when it had none: 1005). */
  readonly onCloseFrame: (code: number | undefined, reason: string) => void;
}

export class Relay {
  readonly direction: Direction;
  readonly source: Socket;
  readonly destination: Socket;
  readonly #scanner: FrameScanner;
  readonly #cell: TrafficCell;
  readonly #pauses = new Set<PauseReason>(['handshake']);
  messages = 0;
  bytes = 0;
  /** The gateway wrote its own close frame to the destination: nothing more may follow it. */
  closed = false;
  /** A gateway close frame waiting for the stream to the destination to reach a frame boundary. */
  pendingClose: CloseFrame | undefined;
  /** Since when (sweeper clock) the destination has held bytes it could not flush. */
  backedUpSince: number | undefined;
  #boundaryOut = true;

  constructor(options: RelayOptions) {
    this.direction = options.direction;
    this.source = options.source;
    this.destination = options.destination;
    this.#cell = options.cell;
    this.#scanner = new FrameScanner(
      { direction: options.direction, allowedRsv: options.allowedRsv },
      {
        onMessage: () => {
          // Messages dropped after the gateway's close frame are not relayed, so not counted.
          if (this.closed) return;
          this.messages++;
          this.#cell.messages++;
        },
        onControl: () => {},
        onClose: options.onCloseFrame,
      },
    );
  }

  /** Reads a chunk from the source through the scanner; the verdict says whether it may go on. */
  scan(chunk: Buffer): ScanResult {
    return this.#scanner.push(chunk);
  }

  /** Whether the bytes read from the source so far end at a frame boundary. */
  get atBoundary(): boolean {
    return this.#scanner.atBoundary;
  }

  /** Whether the source sent a close frame. */
  get closeSeen(): boolean {
    return this.#scanner.closeSeen;
  }

  /** Whether the bytes written to the destination so far end at a frame boundary. */
  get boundaryOut(): boolean {
    return this.#boundaryOut;
  }

  /**
   * Writes source bytes to the destination (`endsAtBoundary`: they end at a frame boundary).
   * Returns false when the destination's buffer is full: the caller pauses the source.
   */
  forward(chunk: Buffer, endsAtBoundary: boolean): boolean {
    if (!this.destination.writable) return true;
    this.bytes += chunk.length;
    this.#cell.bytes += chunk.length;
    const flowing = this.destination.write(chunk);
    this.#boundaryOut = endsAtBoundary;
    return flowing;
  }

  /** Writes the gateway's close frame to the destination; nothing is relayed after it. */
  writeClose([code, reason]: CloseFrame, masked: boolean): void {
    this.pendingClose = undefined;
    this.closed = true;
    if (this.destination.writable) this.destination.write(encodeCloseFrame(code, reason, masked));
  }

  pause(reason: PauseReason): void {
    this.#pauses.add(reason);
    this.source.pause();
  }

  /** Lifts one reason; the source is read again once no reason is left. */
  resume(reason: PauseReason): void {
    this.#pauses.delete(reason);
    if (this.#pauses.size === 0) this.source.resume();
  }

  /** Reads the source whatever held it: what it sends now is dropped, or is its close or FIN. */
  flowFreely(): void {
    this.#pauses.clear();
    this.source.resume();
  }
}
