/**
 * What a tunnel (tunnel.ts) is built with and reports: the settings every tunnel of a gateway
 * shares, the options of one tunnel (its sockets, the heads that came with the handshakes, its
 * route's policy and counters, the negotiated compression), the observer of its route's metrics,
 * the summary the access log and metrics are made of when it ends, and the options of each of
 * its relays.
 */
import type { Socket } from 'node:net';
import type { CloseFrame, ErrorCode } from '../errors/codes.ts';
import type { EventLog } from '../observability/connection-log.ts';
import type { Direction, Initiator, TrafficCell } from '../observability/metrics.ts';
import type { LimitAction, TunnelPolicy } from '../policy/route-policy.ts';
import type { LimitName } from './limits.ts';
import type { Side } from './liveness.ts';
import type { RelayOptions, RelayOwner } from './relay-options.ts';
import { directionFrom, LIMIT_CODES, other } from './sides.ts';
import type { Clock, Sweeper } from './sweeper.ts';

/** What a permessage-deflate negotiation said about each sender's compression context. */
export interface DeflateParameters {
  readonly clientNoContextTakeover: boolean;
  readonly serverNoContextTakeover: boolean;
}

/** What a tunnel reports as it runs, for the route's metrics. */
export interface TunnelObserver {
  limitHit(limit: LimitName, action: LimitAction): void;
  throttled(direction: Direction, seconds: number): void;
  pingRtt(side: Side, seconds: number): void;
  deadPeer(side: Side): void;
}

/** Running totals a tunnel adds to while it runs, one per direction (shared per route). */
export type TunnelCounters = Readonly<Record<Direction, TrafficCell>>;

/** What every tunnel of a gateway shares: the sweeper that enforces deadlines, the gauges. */
export interface TunnelSettings {
  /** The gateway's coarse timer, joined while a side is backed up or a time limit applies. */
  readonly sweeper: Sweeper;
  /** The clock the sweeper reads, for rate limits and throttling. */
  readonly clock: Clock;
  /** Tunnels backed up now, by the direction that waits (read by the metrics at scrape time). */
  readonly backpressure: Record<Direction, number>;
}

export interface TunnelOptions {
  readonly id: string;
  /** What the gateway's tunnels share (the one object, not a copy per tunnel). */
  readonly settings: TunnelSettings;
  /** The deadlines of the route's policy, as they were when the tunnel opened. */
  readonly policy: TunnelPolicy;
  readonly client: Socket;
  readonly backend: Socket;
  /** RSV bits the negotiated extensions allow (0x40 for permessage-deflate). */
  readonly allowedRsv: number;
  /** permessage-deflate as the backend accepted it, when it did. */
  readonly deflate: DeflateParameters | undefined;
  readonly counters: TunnelCounters;
  readonly observer: TunnelObserver;
  readonly log: EventLog;
  readonly onEnd: (summary: TunnelSummary) => void;
  /** The token the connection is bound to: when it expires, and the close frame the client gets. */
  readonly session?: TunnelSession | undefined;
}

/** Bytes each side sent right after its handshake (the client's request, the backend's 101). */
export interface TunnelHeads {
  readonly client: Buffer;
  readonly backend: Buffer;
}

/** A connection bound to its token (src/front/jwt-stage.ts): it ends when the token expires. */
export interface TunnelSession {
  /** When the token expires, grace included, on the sweeper's clock. */
  readonly endsAt: number;
  /** The close frame the client gets then (1008 or a configured 4000-4999 code). */
  readonly close: CloseFrame;
}

/** What is known of a tunnel when it has ended: the access log and metrics are made of this. */
export interface TunnelSummary {
  readonly id: string;
  readonly durationSeconds: number;
  readonly messages: Readonly<Record<Direction, number>>;
  readonly bytes: Readonly<Record<Direction, number>>;
  /** The first close frame's code (1005 when it had none); undefined when none was seen. */
  readonly closeCode: number | undefined;
  readonly closeReason: string;
  readonly initiator: Initiator;
  /** Why the gateway stepped in, when it did. */
  readonly errorCode: ErrorCode | undefined;
}

/** The options of the relay that reads from `from`, reporting to `owner`. */
export function relayOptions(tunnel: TunnelOptions, from: Side, owner: RelayOwner): RelayOptions {
  const direction = directionFrom(from);
  const { deflate } = tunnel;
  return {
    direction,
    source: tunnel[from],
    destination: tunnel[other(from)],
    allowedRsv: tunnel.allowedRsv,
    cell: tunnel.counters[direction],
    limits: tunnel.policy.limits[direction],
    limitCodes: LIMIT_CODES[from],
    clock: tunnel.settings.clock,
    from,
    owner,
    deflate: deflate && {
      resetEachMessage: from === 'client' ? deflate.clientNoContextTakeover : deflate.serverNoContextTakeover,
    },
  };
}
