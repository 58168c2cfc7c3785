/**
 * What a relay (relay.ts) is built with: its sockets and direction, the limits of its direction,
 * the clock, and the callbacks through which it reports to its tunnel; why its source may be
 * paused; and the marker of a read whose verdict waits for the inflater.
 */
import type { Socket } from 'node:net';
import type { Direction, TrafficCell } from '../observability/metrics.ts';
import type { DirectionLimits, LimitAction } from '../policy/route-policy.ts';
import type { ScanResult } from './frame-scanner.ts';
import type { LimitCodes, LimitName } from './limits.ts';
import type { Clock } from './sweeper.ts';

/** Why a relay's source is not being read. */
export type PauseReason = 'handshake' | 'backpressure' | 'throttle' | 'inflate' | 'closing';

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
  /** A close frame came from the source (code undefined when it had none: 1005). */
  readonly onCloseFrame: (code: number | undefined, reason: string) => void;
  /** A write to the destination did not fit its buffer: the source is paused until 'drain'. */
  readonly onBackedUp: () => void;
  /** The source answered the gateway's ping; `rttMs` since it was written. */
  readonly onGatewayPong: (rttMs: number) => void;
  readonly onLimit: (limit: LimitName, action: LimitAction) => void;
  /** A throttle pause began (the tunnel watches the paused source for a reset). */
  readonly onThrottleStart: () => void;
  /** A throttle pause ended after `ms`. */
  readonly onThrottled: (ms: number) => void;
  /**
   * permessage-deflate was negotiated: whether the sender of this direction resets its context
   * after each message. With a message size limit, messages are then counted inflated.
   */
  readonly deflate: { readonly resetEachMessage: boolean } | undefined;
  /** The result of a read that returned PENDING. */
  readonly onSettled: (result: ScanResult) => void;
}
