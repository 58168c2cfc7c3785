/**
 * One direction of a tunnel: bytes read from `source` go through a frame scanner and on to
 * `destination` unchanged. The relay owns everything that belongs to its direction: the scanner,
 * the limits its frames must pass (limits.ts), the messages and bytes relayed, whether what it
 * wrote so far ends at a frame boundary (the only place the gateway may put a frame of its own),
 * the gateway frames waiting for that boundary (a close, a ping), the answer it waits for to its
 * own ping (a pong it takes out of the stream), whether the destination is closed to further
 * data, since when the destination has been backed up, and why the source is paused.
 *
 * Bytes of a frame header that is not complete yet (and of a close frame, or a pong the gateway
 * waits for, until it is whole) are held back, at most 14 + 125 bytes, so that every verdict on
 * a frame is made before any of its bytes went on: a limit or a violation always stops the stream
 * at a frame boundary, where a close frame can follow.
 *
 * A pause has reasons: the source is read again only when none is left, so a destination's
 * 'drain' never resumes a socket that a rate limit (throttle) or the handshake holds.
 */
import type { Socket } from 'node:net';
import type { CloseFrame } from '../errors/codes.ts';
import type { Direction } from '../observability/metrics.ts';
import type { LimitAction } from '../policy/route-policy.ts';
import { encodeCloseFrame } from './close-frame.ts';
import { FrameScanner, type ScanResult } from './frame-scanner.ts';
import { InflateCounter, type InflateVerdict } from './inflate-counter.ts';
import { InflateWatch } from './inflate-watch.ts';
import { LimitGuard, type LimitSink } from './limits.ts';
import { PAUSE_BIT, type PauseReason, PENDING, type Pending, type RelayOptions } from './relay-options.ts';
import type { ScannerEvents } from './scan-types.ts';
import { type LimitName, type Veto, WAIT, type Wait } from './verdict.ts';

export {
  type PauseReason,
  PENDING,
  type Pending,
  type RelayOptions,
  type RelayOwner,
} from './relay-options.ts';

/** The longest delay a Node.js timer can wait (2^31 - 1 ms, about 24.8 days). */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Gateway pings whose answers are recognised at once: the latest and the one before it. */
const MAX_AWAITED_PONGS = 2;

/** What a deferred read needs to pass its bytes on once the inflater has spoken. */
interface DeferredRead {
  readonly held: Buffer | undefined;
  readonly chunk: Buffer;
  readonly result: ScanResult;
  readonly drops: readonly number[];
  readonly keep: number;
  readonly waitAt: number | undefined;
  readonly midPayload: boolean;
}

export class Relay implements ScannerEvents, LimitSink {
  readonly direction: Direction;
  readonly source: Socket;
  readonly destination: Socket;
  readonly #options: RelayOptions;
  readonly #scanner: FrameScanner;
  readonly #guard: LimitGuard | undefined;
  #pauses = PAUSE_BIT.handshake;
  messages = 0;
  /** The peers' pings and pongs read from the source (not the answers to the gateway's pings). */
  controls = 0;
  /** Bytes relayed to the destination. */
  bytes = 0;
  /** Bytes read from the source, relayed or not. */
  bytesRead = 0;
  /** The gateway wrote its own close frame to the destination: nothing more may follow it. */
  closed = false;
  /** A gateway close frame waiting for the stream to the destination to reach a frame boundary. */
  pendingClose: CloseFrame | undefined;
  /** A gateway ping waiting for that boundary, and what to do once it is written. */
  #pendingPing: { readonly frame: Buffer; readonly written: () => void } | undefined;
  /** Since when (sweeper clock) the destination has held bytes it could not flush. */
  backedUpSince: number | undefined;
  #boundaryOut = true;
  /** Bytes of an unfinished header or parsed control frame, not passed on yet. */
  #held: Buffer | undefined;
  /** How many held bytes the current read began with (they come before its chunk). */
  #heldLength = 0;
  /** Byte ranges [start, end) of the current read (held bytes first) to take out of the stream. */
  readonly #drops: number[] = [];
  /** The payload of the gateway ping whose pong the source owes, and when that ping was written. */
  /**
   * The gateway pings whose pong the source owes, oldest first: the latest and the one before it
   * (a peer may answer only the most recent ping, RFC 6455 §5.5.3, and a late answer to the
   * previous one must not reach the other side either).
   */
  readonly #awaited: { readonly payload: Buffer; readonly sentAt: number }[] = [];
  #throttle: { readonly since: number; readonly cancel: () => void } | undefined;
  /** Counts compressed messages inflated, when deflate was negotiated and a size limit applies. */
  readonly #inflate: InflateWatch | undefined;
  /** A read waits for its inflate verdict. */
  #deferred = false;
  /** A limit stopped this direction: nothing more is relayed or checked. */
  #vetoed = false;
  /** The tunnel is closing: nothing is throttled any more (sizes and rate closes still hold). */
  #throttleOff = false;

  constructor(options: RelayOptions) {
    this.direction = options.direction;
    this.source = options.source;
    this.destination = options.destination;
    this.#options = options;
    this.#guard = LimitGuard.needed(options.limits)
      ? new LimitGuard(options.limits, options.limitCodes, options.clock, this)
      : undefined;
    const { maxMessageBytes } = options.limits;
    this.#inflate =
      options.deflate && maxMessageBytes !== undefined
        ? new InflateWatch(new InflateCounter(maxMessageBytes, options.deflate.resetEachMessage))
        : undefined;
    // The relay is its scanner's listener: no closures per relay.
    this.#scanner = new FrameScanner({ direction: options.direction, allowedRsv: options.allowedRsv }, this);
    this.#scanner.inspectPayload = this.#inflate !== undefined;
  }

  /** Scanner event (ScannerEvents; called by this relay's scanner only): a data frame's header. */
  onDataFrame(
    first: boolean,
    _fin: boolean,
    frameBytes: number,
    messageBytes: number,
    compressed: boolean,
  ): Veto | Wait | undefined {
    const guard = this.#guard;
    const inflate = this.#inflate;
    const inflated = compressed && inflate !== undefined;
    const checked = guard !== undefined && !this.closed && !this.#vetoed;
    const verdict = checked ? guard.onDataFrame(first, frameBytes, messageBytes, inflated) : undefined;
    if (verdict === WAIT && !this.#throttleOff) return WAIT; // the frame is read again later
    if (inflated && !this.closed) inflate.onFrame(this.#frameCut());
    if (verdict === WAIT) return undefined;
    if (verdict !== undefined) this.#vetoed = true;
    return verdict;
  }

  /** Scanner event: a data message completed. */
  onMessage(): void {
    // Messages dropped after a veto or the gateway's close frame are not relayed, so not counted.
    if (this.closed || this.#vetoed) return;
    this.messages++;
    this.#options.cell.messages++;
  }

  /** Scanner event: a ping or pong of the peers. */
  onControl(): void {
    this.controls++;
  }

  /** Limit event (LimitSink; called by this relay's limit guard only). */
  onLimit(limit: LimitName, action: LimitAction): void {
    this.#options.owner.relayLimit(this.#options.from, limit, action);
  }

  /** Scanner event: a close frame came from the source. */
  onClose(code: number | undefined, reason: string): void {
    this.#options.owner.relayCloseFrame(this.#options.from, code, reason);
  }

  /** Scanner event (while inflating): payload bytes of the current data frame. */
  onPayload(chunk: Buffer, start: number, end: number, last: boolean): void {
    const scanner = this.#scanner;
    if (!scanner.messageCompressed || this.closed) return;
    this.#inflate?.onPayload(scanner.unmaskedCopy(chunk, start, end), last && scanner.frameFin);
  }

  /** Data payload bytes read from the source so far. */
  get dataBytes(): number {
    return this.#scanner.dataBytes;
  }

  /** Whether the source sent a close frame. */
  get closeSeen(): boolean {
    // A close frame in a read held for its inflate verdict has not gone on yet.
    return this.#scanner.closeSeen && !this.#deferred;
  }

  /** Whether the bytes written to the destination so far end at a frame boundary. */
  get boundaryOut(): boolean {
    return this.#boundaryOut;
  }

  /** Whether something (backpressure, a throttle, the handshake) keeps the source from being read. */
  get paused(): boolean {
    return this.#pauses !== 0;
  }

  /** Whether the source owes an answer to a gateway ping. */
  get awaitingPong(): boolean {
    return this.#awaited.length > 0;
  }

  /**
   * Reads a chunk from the source: scans it and passes on to the destination what may go on (all
   * of it but held bytes and the gateway's pongs; on a failed verdict, what comes before the
   * offending frame). Then writes a gateway ping waiting for a boundary, and throttles the source
   * when a rate limit is in debt.
   */
  read(chunk: Buffer): ScanResult | Pending {
    this.bytesRead += chunk.length;
    const held = this.#held;
    const heldLength = held?.length ?? 0;
    this.#held = undefined;
    this.#heldLength = heldLength;
    this.#drops.length = 0;
    this.#inflate?.startRead();
    const result = this.#scanner.push(chunk);
    if (this.closed) return result; // after our close frame nothing may reach the destination
    const jobs = this.#inflate?.takeJobs();
    if (jobs === undefined) return this.#apply(held, chunk, result, this.#drops);
    // Compressed bytes of a size-limited message: nothing of this chunk goes on before the verdict.
    const read: DeferredRead = {
      held,
      chunk,
      result,
      drops: [...this.#drops],
      keep: this.#scanner.heldBytes,
      waitAt: this.#scanner.waitAt,
      midPayload: this.#scanner.midPayload,
    };
    this.pause('inflate');
    this.#deferred = true;
    this.#inflate?.counter.run(jobs.list, (verdict) => {
      this.#deferred = false;
      this.resume('inflate');
      this.#options.owner.relaySettled(this.#options.from, this.#settle(read, jobs.cuts, verdict));
    });
    return PENDING;
  }

  /** Passes on what a read may pass on, given its scan result; returns that result. */
  #apply(
    held: Buffer | undefined,
    chunk: Buffer,
    result: ScanResult,
    drops: readonly number[],
    deferred?: DeferredRead,
  ): ScanResult {
    const heldLength = held?.length ?? 0;
    const total = heldLength + chunk.length;
    if (!result.ok) {
      // The offending frame began in the held bytes when its header began in an earlier chunk.
      this.#emit(held, chunk, result.boundary === -1 ? 0 : heldLength + result.boundary, drops);
      this.#boundaryOut = true;
      return result;
    }
    const waitAt = deferred ? deferred.waitAt : this.#scanner.waitAt;
    if (waitAt !== undefined) {
      // A throttle holds the frame that starts here: the rest goes back into the socket, unread.
      const at = waitAt === -1 ? 0 : heldLength + waitAt;
      this.#emit(held, chunk, at, drops);
      this.#boundaryOut = true;
      const rest =
        at < heldLength
          ? Buffer.concat([(held ?? chunk).subarray(at), chunk])
          : chunk.subarray(at - heldLength);
      this.bytesRead -= rest.length;
      // Stopped for the gateway's close frame (the tunnel writes it next, which lets the source
      // flow again), or held by a throttle. Either way the source is paused before the rest goes
      // back, or it would be read again at once.
      if (this.pendingClose === undefined) {
        if (this.#pendingPing) this.#writePing(this.#pendingPing);
        this.#throttleIfInDebt(this.#guard, true);
      } else {
        this.pause('closing');
      }
      this.source.unshift(rest);
      return result;
    }
    const keep = deferred ? deferred.keep : this.#scanner.heldBytes;
    this.#emit(held, chunk, total - keep, drops);
    if (keep > 0) this.#held = Buffer.from(heldTail(held, chunk, keep));
    this.#boundaryOut = !(deferred ? deferred.midPayload : this.#scanner.midPayload);
    if (this.#boundaryOut && this.#pendingPing) this.#writePing(this.#pendingPing);
    this.#throttleIfInDebt(this.#guard, false);
    return result;
  }

  /**
   * The inflate verdict on a deferred read. Over the limit, the stream stops where the message
   * began in this read, a frame boundary where a close frame can follow; when the message was
   * in the middle of a frame when the read began, nothing of the read goes on and the stream is
   * left mid-frame (`boundaryOut` false: the tunnel can only drop that connection).
   */
  #settle(read: DeferredRead, cuts: readonly (number | undefined)[], verdict: InflateVerdict): ScanResult {
    if (this.closed) return read.result;
    if (verdict.kind === 'ok') return this.#apply(read.held, read.chunk, read.result, read.drops, read);
    this.#vetoed = true;
    const cut = cuts[verdict.index];
    const heldLength = read.held?.length ?? 0;
    const scanCut = read.result.ok
      ? Infinity
      : read.result.boundary === -1
        ? 0
        : heldLength + read.result.boundary;
    if (cut !== undefined && scanCut < cut)
      return this.#apply(read.held, read.chunk, read.result, read.drops, read);
    if (cut === undefined) this.#boundaryOut = false;
    else {
      this.#emit(read.held, read.chunk, cut, read.drops);
      this.#boundaryOut = true;
    }
    // The boundary is reported in chunk terms, as a scan result would (held bytes come before 0).
    const boundary = cut === undefined ? -1 : cut - heldLength;
    if (verdict.kind === 'corrupt') {
      return { ok: false, violation: 'BAD_COMPRESSED_DATA', detail: verdict.detail, boundary };
    }
    // A veto in the same read was counted by the guard already.
    if (read.result.ok) this.onLimit('message_size', 'close');
    const detail = `message inflating to ${verdict.bytes}+ bytes over the ${this.#options.limits.maxMessageBytes}-byte limit`;
    return {
      ok: false,
      violation: 'LIMIT',
      detail,
      boundary,
      veto: { code: this.#options.limitCodes.tooBig, limit: 'message_size', detail },
    };
  }

  /** Writes the gateway's close frame to the destination; nothing is relayed after it. */
  writeClose([code, reason]: CloseFrame, masked: boolean): void {
    this.pendingClose = undefined;
    this.#scanner.stopAtBoundary = false;
    this.#pendingPing = undefined;
    this.#held = undefined;
    this.closed = true;
    if (this.destination.writable) this.destination.write(encodeCloseFrame(code, reason, masked));
  }

  /**
   * Sends the gateway's ping to the destination now, or at the next frame boundary; `written` runs
   * when it is written (the answer is owed from then on).
   */
  ping(frame: Buffer, written: () => void): void {
    if (this.closed || this.pendingClose) return;
    const ping = { frame, written };
    if (this.#boundaryOut) this.#writePing(ping);
    else this.#pendingPing = ping;
  }

  /**
   * Queues the gateway's close frame for the next frame boundary: the scan stops there (the rest
   * of the read goes back into the socket, to be read and dropped once the close is written), and
   * no throttle may hold that boundary back.
   */
  queueClose(frame: CloseFrame): void {
    this.pendingClose = frame;
    this.#scanner.stopAtBoundary = true;
    this.stopThrottling();
  }

  /** The tunnel is closing: nothing is throttled any more, so that the closing handshake can pass. */
  stopThrottling(): void {
    this.#throttleOff = true;
    this.#endThrottle();
  }

  /** Whether a limit stopped this direction (its close is on the way). */
  get vetoed(): boolean {
    return this.#vetoed;
  }

  /** Whether the source is paused by a throttle now. */
  get throttled(): boolean {
    return this.#throttle !== undefined;
  }

  /** From now on, the source's pong carrying `payload` answers the gateway's ping (sent at `sentAt`). */
  expectPong(payload: Buffer, sentAt: number): void {
    this.#awaited.push({ payload, sentAt });
    if (this.#awaited.length > MAX_AWAITED_PONGS) this.#awaited.shift();
    this.#scanner.capturePongs = true;
  }

  pause(reason: PauseReason): void {
    this.#pauses |= PAUSE_BIT[reason];
    this.source.pause();
  }

  /** Lifts one reason; the source is read again once no reason is left. */
  resume(reason: PauseReason): void {
    this.#pauses &= ~PAUSE_BIT[reason];
    if (this.#pauses === 0) this.source.resume();
  }

  /** Reads the source whatever held it: what it sends now is dropped, or is its close or FIN. */
  flowFreely(): void {
    this.#endThrottle();
    this.#pauses = 0;
    this.source.resume();
  }

  /** Lets go of timers and the inflater (the tunnel ended). */
  stop(): void {
    this.#endThrottle();
    this.#inflate?.counter.close();
  }

  /** Where the frame whose header just completed begins, in held + chunk terms. */
  #frameCut(): number {
    const start = this.#scanner.frameStart;
    return start === -1 ? 0 : this.#heldLength + start;
  }

  #writePing(ping: { readonly frame: Buffer; readonly written: () => void }): void {
    this.#pendingPing = undefined;
    if (!this.destination.writable) return;
    ping.written();
    if (!this.destination.write(ping.frame)) this.#backedUp();
  }

  onPong(payload: Buffer, frameStart: number, frameEnd: number): void {
    const index = this.#awaited.findIndex((ping) => payload.equals(ping.payload));
    const awaited = this.#awaited[index];
    if (awaited === undefined) return; // the peers' own pong: it goes on
    // An answer to the latest ping answers the earlier one too; one to an earlier ping leaves the latest owed.
    this.#awaited.splice(0, index + 1);
    this.#scanner.capturePongs = this.#awaited.length > 0;
    this.controls--; // the gateway's own pong: not the peers' activity
    const heldLength = this.#heldLength;
    this.#drops.push(frameStart === -1 ? 0 : heldLength + frameStart, heldLength + frameEnd);
    this.#options.owner.relayGatewayPong(this.#options.from, this.#options.clock.now() - awaited.sentAt);
  }

  /** Writes bytes [0, end) of held + chunk to the destination, leaving out the dropped ranges. */
  #emit(held: Buffer | undefined, chunk: Buffer, end: number, drops: readonly number[]): void {
    // Several pieces (held bytes and the new read, the ranges around a dropped pong) leave in one
    // writev, not one system call each: with pipelined senders nearly every read has held bytes.
    const pieces = drops.length > 0 || (held !== undefined && end > held.length);
    if (pieces) this.destination.cork();
    try {
      let from = 0;
      for (let i = 0; i < drops.length; i += 2) {
        const start = drops[i] ?? 0;
        if (start >= end) break;
        this.#write(held, chunk, from, start);
        from = drops[i + 1] ?? start;
      }
      this.#write(held, chunk, from, end);
    } finally {
      if (pieces) this.destination.uncork();
    }
  }

  /** Writes bytes [from, to) of held + chunk. */
  #write(held: Buffer | undefined, chunk: Buffer, from: number, to: number): void {
    if (to <= from || !this.destination.writable) return;
    const heldLength = held?.length ?? 0;
    let flowing = true;
    if (held && from < heldLength)
      flowing = this.destination.write(held.subarray(from, Math.min(to, heldLength)));
    if (to > heldLength) {
      const start = Math.max(0, from - heldLength);
      const part =
        start === 0 && to - heldLength === chunk.length ? chunk : chunk.subarray(start, to - heldLength);
      flowing = this.destination.write(part);
    }
    this.bytes += to - from;
    this.#options.cell.bytes += to - from;
    if (!flowing) this.#backedUp();
  }

  #backedUp(): void {
    this.pause('backpressure');
    this.#options.owner.relayBackedUp(this.#options.from);
  }

  /** Pauses the source until the throttling buckets are out of debt (at least 1 ms when `waiting`). */
  #throttleIfInDebt(guard: LimitGuard | undefined, waiting: boolean): void {
    if (guard === undefined || this.#throttle !== undefined || this.#throttleOff) return;
    // A timer cannot wait longer (a longer delay would fire at once); the next frame waits again.
    const delayMs = Math.min(MAX_TIMER_MS, Math.max(guard.throttleDelayMs(), waiting ? 1 : 0));
    if (delayMs === 0) return;
    const since = this.#options.clock.now();
    const cancel = this.#options.clock.after(delayMs, () => this.#endThrottle());
    this.#throttle = { since, cancel };
    this.pause('throttle');
    this.#options.owner.relayThrottleStart(this.#options.from);
  }

  #endThrottle(): void {
    const throttle = this.#throttle;
    if (throttle === undefined) return;
    this.#throttle = undefined;
    throttle.cancel();
    this.#options.owner.relayThrottled(this.#options.from, this.#options.clock.now() - throttle.since);
    this.resume('throttle');
  }
}

/** The last `keep` bytes of held + chunk. */
function heldTail(held: Buffer | undefined, chunk: Buffer, keep: number): Buffer {
  if (keep <= chunk.length) return chunk.subarray(chunk.length - keep);
  return Buffer.concat([held?.subarray(held.length - (keep - chunk.length)) ?? Buffer.alloc(0), chunk]);
}
