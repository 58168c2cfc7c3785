/**
 * The message limits of one direction of a tunnel, consulted by its relay each time a data frame's
 * header completes (before any byte of that frame is passed on): the size of a message across its
 * fragments, the size of one frame, and token buckets for the message rate and the byte rate. A
 * limit that closes returns a veto (the relay stops the stream at that frame's start, so the
 * receiver never sees the message). A limit that throttles lets a frame through while its bucket
 * is not in debt (taking its tokens, possibly into debt) and makes the next one wait while it is:
 * the relay puts the rest of the chunk back into the socket and does not read it for
 * `throttleDelayMs()`. Nothing here
 * allocates unless a limit is hit, and a direction with no limits has no guard at all.
 */
import type { ErrorCode } from '../errors/codes.ts';
import type { DirectionLimits, LimitAction, RateLimit } from '../policy/route-policy.ts';
import type { Clock } from './sweeper.ts';
import { type LimitName, type Veto, WAIT, type Wait } from './verdict.ts';

export type { LimitName, Veto } from './verdict.ts';

/** The outcome codes a direction's limits close with. */
export interface LimitCodes {
  /** A message or frame over its size limit (1009 to the sender). */
  readonly tooBig: ErrorCode;
  /** A rate limit with the close action (1008 to the sender). */
  readonly rateLimited: ErrorCode;
}

/** A token bucket: `burst` tokens at most, refilled at `perSecond`; throttling may run into debt. */
export class TokenBucket {
  readonly #perMs: number;
  readonly #burst: number;
  #tokens: number;
  #at: number;

  constructor(rate: RateLimit, now: number) {
    this.#perMs = rate.perSecond / 1000;
    this.#burst = rate.burst;
    this.#tokens = rate.burst;
    this.#at = now;
  }

  /** Tokens available at `now` (negative while in debt). */
  tokens(now: number): number {
    if (now > this.#at) {
      this.#tokens = Math.min(this.#burst, this.#tokens + (now - this.#at) * this.#perMs);
      this.#at = now;
    }
    return this.#tokens;
  }

  /** Takes `n` tokens if there are that many; false (nothing taken) otherwise. */
  tryTake(n: number, now: number): boolean {
    if (this.tokens(now) < n) return false;
    this.#tokens -= n;
    return true;
  }

  /** Gives back `n` tokens taken for something that did not happen after all (never past `burst`). */
  refund(n: number): void {
    this.#tokens = Math.min(this.#burst, this.#tokens + n);
  }

  /** Takes `n` tokens whatever is left, possibly into debt. */
  take(n: number, now: number): void {
    this.tokens(now);
    this.#tokens -= n;
  }

  /** Milliseconds until `n` tokens are there (0 when they are). */
  waitMs(n: number, now: number): number {
    const missing = n - this.tokens(now);
    return missing <= 0 ? 0 : Math.ceil(missing / this.#perMs);
  }

  /** Milliseconds until the bucket is out of debt (0 when it is not in debt). */
  debtMs(now: number): number {
    const tokens = this.tokens(now);
    return tokens >= 0 ? 0 : Math.ceil(-tokens / this.#perMs);
  }
}

/** A limit was hit: which one, and what it did. */
/** Where a limit guard reports its hits. */
export interface LimitSink {
  onLimit(limit: LimitName, action: LimitAction): void;
}

export class LimitGuard {
  readonly #limits: DirectionLimits;
  readonly #codes: LimitCodes;
  readonly #clock: Clock;
  readonly #sink: LimitSink;
  readonly #messages: TokenBucket | undefined;
  readonly #bytes: TokenBucket | undefined;

  constructor(limits: DirectionLimits, codes: LimitCodes, clock: Clock, sink: LimitSink) {
    this.#limits = limits;
    this.#codes = codes;
    this.#clock = clock;
    this.#sink = sink;
    const start = clock.now();
    this.#messages = limits.messageRate && new TokenBucket(limits.messageRate, start);
    this.#bytes = limits.byteRate && new TokenBucket(limits.byteRate, start);
  }

  /** Whether any limit of `limits` is set: without one, a direction needs no guard. */
  static needed(limits: DirectionLimits): boolean {
    return (
      limits.maxMessageBytes !== undefined ||
      limits.maxFrameBytes !== undefined ||
      limits.messageRate !== undefined ||
      limits.byteRate !== undefined
    );
  }

  /**
   * The verdict on a data frame whose header just completed (see ScannerEvents.onDataFrame);
   * `inflated`: its message is compressed and its size is counted by an inflater.
   */
  onDataFrame(
    first: boolean,
    frameBytes: number,
    messageBytes: number,
    inflated: boolean,
  ): Veto | Wait | undefined {
    const { maxMessageBytes, maxFrameBytes, messageRate, byteRate } = this.#limits;
    if (maxFrameBytes !== undefined && frameBytes > maxFrameBytes) {
      return this.#veto(
        this.#codes.tooBig,
        'frame_size',
        `frame of ${frameBytes} bytes over the ${maxFrameBytes}-byte limit`,
      );
    }
    // A compressed message counted inflated gets its verdict from the inflater instead.
    if (maxMessageBytes !== undefined && !inflated && messageBytes > maxMessageBytes) {
      return this.#veto(
        this.#codes.tooBig,
        'message_size',
        `message of ${messageBytes}+ bytes over the ${maxMessageBytes}-byte limit`,
      );
    }
    if (this.#messages === undefined && this.#bytes === undefined) return undefined;
    const now = this.#clock.now();
    const messages = first && messageRate ? this.#messages : undefined;
    const bytes = frameBytes > 0 && byteRate ? this.#bytes : undefined;
    // A throttle in debt holds the frame back before any token is taken for it.
    if (messageRate?.action === 'throttle' && messages && messages.tokens(now) < 0) return WAIT;
    if (byteRate?.action === 'throttle' && bytes && bytes.tokens(now) < 0) return WAIT;
    if (messages && messageRate) {
      if (messageRate.action === 'throttle') messages.take(1, now);
      else if (!messages.tryTake(1, now)) {
        return this.#veto(
          this.#codes.rateLimited,
          'message_rate',
          `over ${messageRate.perSecond} messages/s`,
        );
      }
    }
    if (bytes && byteRate) {
      if (byteRate.action === 'throttle') bytes.take(frameBytes, now);
      else if (!bytes.tryTake(frameBytes, now)) {
        return this.#veto(this.#codes.rateLimited, 'byte_rate', `over ${byteRate.perSecond} bytes/s`);
      }
    }
    return undefined;
  }

  /**
   * How long the source must not be read for the throttling buckets to be out of debt (0: read
   * on). Counts a throttle hit for each bucket in debt.
   */
  throttleDelayMs(): number {
    if (this.#messages === undefined && this.#bytes === undefined) return 0;
    const now = this.#clock.now();
    const messages = this.#messages?.debtMs(now) ?? 0;
    const bytes = this.#bytes?.debtMs(now) ?? 0;
    if (messages > 0) this.#sink.onLimit('message_rate', 'throttle');
    if (bytes > 0) this.#sink.onLimit('byte_rate', 'throttle');
    return Math.max(messages, bytes);
  }

  #veto(code: ErrorCode, limit: LimitName, detail: string): Veto {
    this.#sink.onLimit(limit, 'close');
    return { code, limit, detail };
  }
}
