/**
 * What a relay (relay.ts) is built with: its sockets and direction, the limits of its direction,
 * the clock, and the tunnel it reports to (its owner); why its source may be
 * paused; and the marker of a read whose verdict waits for the inflater.
 */
import type { Socket } from 'node:net';
import type { Direction, TrafficCell } from '../observability/metrics.ts';
import type { DirectionLimits, LimitAction } from '../policy/route-policy.ts';
import type { ScanResult } from './frame-scanner.ts';
import type { LimitCodes, LimitName } from './limits.ts';
import type { Side } from './sides.ts';
import type { Clock } from './sweeper.ts';

/** Why a relay's source is not being read. */
export type PauseReason = 'handshake' | 'backpressure' | 'throttle' | 'inflate' | 'closing';

/** Each reason's bit in a relay's set of reasons (a number, not a Set: one per direction of every tunnel). */
export const PAUSE_BIT: Readonly<Record<PauseReason, number>> = {
  handshake: 1,
  backpressure: 2,
  throttle: 4,
  inflate: 8,
  closing: 16,
};

/** A read whose verdict waits for the inflater: its result comes through `onSettled`. */
export const PENDING = 'pending';
export type Pending = typeof PENDING;

export interface RelayOptions {
  readonly direction: Direction;
  readonly source: Socket;
  readonly destination: Socket;
  /** RSV bits the negotiated extensions allow (0x40 for permessage-deflate). */
  readonly allowedRsv: number;
  /** The route's running totals for this direction. */
  readonly cell: TrafficCell;
  /** What frames in this direction must pass, and the codes the limits close with. */
  readonly limits: DirectionLimits;
  readonly limitCodes: LimitCodes;
  readonly clock: Clock;
  /** The side the relay reads from, as its owner's events name it. */
  readonly from: Side;
  /** Its tunnel, told of what happens in this direction. */
  readonly owner: RelayOwner;
  /**
   * permessage-deflate was negotiated: whether the sender of this direction resets its context
   * after each message. With a message size limit, messages are then counted inflated.
   */
  readonly deflate: { readonly resetEachMessage: boolean } | undefined;
}

/**
 * What a relay tells its tunnel, each event naming the side the relay reads from: one object for
 * both relays of a tunnel rather than callbacks (closures) per relay.
 */
export interface RelayOwner {
  /** A close frame came from `from` (code undefined when it had none: 1005). */
  relayCloseFrame(from: Side, code: number | undefined, reason: string): void;
  /** A write toward the other side did not fit its buffer: `from` is paused until 'drain'. */
  relayBackedUp(from: Side): void;
  /** `from` answered the gateway's ping; `rttMs` since it was written. */
  relayGatewayPong(from: Side, rttMs: number): void;
  relayLimit(from: Side, limit: LimitName, action: LimitAction): void;
  /** A throttle pause of `from` began (the tunnel watches the paused source for a reset). */
  relayThrottleStart(from: Side): void;
  /** A throttle pause of `from` ended after `ms`. */
  relayThrottled(from: Side, ms: number): void;
  /** The result of a read from `from` that returned PENDING. */
  relaySettled(from: Side, result: ScanResult): void;
}
