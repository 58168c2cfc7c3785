/**
 * The time-based policy of a tunnel, checked on each tick of the gateway's sweeper (never a timer
 * per tunnel): the idle timeout, the gateway's keepalive pings and the deadline for their answers,
 * the maximum lifetime, and the expiry of the token the connection was opened with. It reads only counters the relays keep anyway (messages, pings and
 * pongs, bytes read), so the hot path pays nothing for it: activity is noticed as a counter that
 * moved since the last tick.
 *
 * A pinged peer is dead when nothing at all was read from it for `pongTimeout` while the gateway
 * was reading it: a peer in the middle of sending a large frame cannot answer before the frame
 * ends but is plainly alive, and a peer the gateway itself stopped reading (throttled, or backed
 * up behind the other side) cannot be heard, so its deadline waits.
 */
import { randomFillSync } from 'node:crypto';
import type { ErrorCode } from '../errors/codes.ts';
import type { TunnelPolicy } from '../policy/route-policy.ts';

import { SIDES, type Side } from './sides.ts';

export type { Side } from './sides.ts';

/** What the liveness checks read from, and do to, a tunnel. */
export interface Watched {
  /**
   * Data relayed so far, both ways (messages and data payload bytes), plus the peers' pings and
   * pongs with `withPings`: every change is activity.
   */
  activity(withPings: boolean): number;
  /** Whether the gateway holds a sender back now (a throttle): data is waiting, so not idle. */
  throttled(): boolean;
  /** Bytes read from `side` so far. */
  heard(side: Side): number;
  /** Whether the gateway is not reading `side` now (throttled, backed up, handshake). */
  deaf(side: Side): boolean;
  /** Whether `side` still owes the answer to a gateway ping. */
  owesPong(side: Side): boolean;
  /**
   * Sends a gateway ping with `payload` to `side`, at the next frame boundary toward it; the
   * tunnel calls {@link Liveness.pingWritten} when it is written.
   */
  ping(side: Side, payload: Buffer): void;
}

/** The ping the gateway sends: a fixed-size random payload that recognises its pong. */
const PING_PAYLOAD_BYTES = 8;
const PING_FIN_OPCODE = 0x89;
const MASK_BIT = 0x80;

/** A ping frame carrying `payload` (at most 125 bytes), masked with a fresh key toward a backend. */
export function encodePingFrame(payload: Buffer, masked: boolean): Buffer {
  const headerBytes = masked ? 6 : 2;
  const frame = Buffer.allocUnsafe(headerBytes + payload.length);
  frame[0] = PING_FIN_OPCODE;
  frame[1] = (masked ? MASK_BIT : 0) | payload.length;
  if (!masked) {
    payload.copy(frame, 2);
    return frame;
  }
  randomFillSync(frame, 2, 4);
  for (let i = 0; i < payload.length; i++) frame[6 + i] = (payload[i] ?? 0) ^ (frame[2 + (i & 3)] ?? 0);
  return frame;
}

interface Keepalive {
  readonly intervalMs: number;
  lastPingAt: number;
  /** When the side is dead unless something is heard from it. */
  deadline: number;
  /** Bytes heard from the side when the deadline was last set. */
  heard: number;
}

export class Liveness {
  readonly #policy: TunnelPolicy;
  readonly #keepalive: Record<Side, Keepalive | undefined>;
  readonly #endsAt: number | undefined;
  readonly #sessionEndsAt: number | undefined;
  #lastActivity: number;
  #activity = 0;

  /**
   * `random` in [0, 1) picks the lifetime's jitter; `sessionEndsAt` is when the connection's token
   * expires (on the same clock as `now`), if it is bound to one.
   */
  constructor(
    policy: TunnelPolicy,
    now: number,
    random: () => number = Math.random,
    sessionEndsAt: number | undefined = undefined,
  ) {
    this.#policy = policy;
    this.#sessionEndsAt = sessionEndsAt;
    this.#lastActivity = now;
    const keepalive = (intervalMs: number | undefined): Keepalive | undefined =>
      intervalMs === undefined ? undefined : { intervalMs, lastPingAt: now, deadline: Infinity, heard: 0 };
    this.#keepalive = {
      client: keepalive(policy.pingIntervalMs.client),
      backend: keepalive(policy.pingIntervalMs.backend),
    };
    this.#endsAt =
      policy.maxLifetimeMs === undefined
        ? undefined
        : now + Math.floor(policy.maxLifetimeMs * (1 - policy.lifetimeJitter * random()));
  }

  /** Whether any check applies: if none, the tunnel need not join the sweeper for it. */
  static needed(policy: TunnelPolicy): boolean {
    return (
      policy.idleTimeoutMs !== undefined ||
      policy.maxLifetimeMs !== undefined ||
      policy.pingIntervalMs.client !== undefined ||
      policy.pingIntervalMs.backend !== undefined
    );
  }

  /** One tick: sends the pings that are due, and names the outcome when the tunnel must end. */
  sweep(now: number, watched: Watched): ErrorCode | undefined {
    if (this.#sessionEndsAt !== undefined && now >= this.#sessionEndsAt) return 'TOKEN_EXPIRED';
    if (this.#endsAt !== undefined && now >= this.#endsAt) return 'LIFETIME_EXCEEDED';
    const { idleTimeoutMs, pingsCountAsActivity } = this.#policy;
    if (idleTimeoutMs !== undefined) {
      const activity = watched.activity(pingsCountAsActivity);
      if (activity !== this.#activity || watched.throttled()) {
        this.#activity = activity;
        this.#lastActivity = now;
      } else if (now - this.#lastActivity >= idleTimeoutMs) {
        return 'IDLE_TIMEOUT';
      }
    }
    for (const side of SIDES) {
      const keepalive = this.#keepalive[side];
      if (keepalive === undefined) continue;
      if (watched.owesPong(side) && !this.#stillDue(keepalive, now, watched, side)) {
        return side === 'client' ? 'CLIENT_UNRESPONSIVE' : 'BACKEND_UNRESPONSIVE';
      }
      // A ping still unanswered does not stop the next one: a peer may answer only the latest.
      if (now - keepalive.lastPingAt >= keepalive.intervalMs) {
        // The deadline starts when the ping is written (pingWritten), not while it waits for a frame boundary.
        keepalive.lastPingAt = now;
        const payload = Buffer.allocUnsafe(PING_PAYLOAD_BYTES);
        randomFillSync(payload);
        watched.ping(side, payload);
      }
    }
    return undefined;
  }

  /**
   * The gateway's ping to `side` was written at `now`: its answer is due within the pong timeout.
   * A peer that already owed one keeps the deadline it had (a new ping does not buy it time).
   */
  pingWritten(side: Side, now: number, heard: number, alreadyOwed: boolean): void {
    const keepalive = this.#keepalive[side];
    if (keepalive === undefined || alreadyOwed) return;
    keepalive.deadline = now + this.#policy.pongTimeoutMs;
    keepalive.heard = heard;
  }

  /** False once a pinged side has been silent past its deadline while the gateway was reading it. */
  #stillDue(keepalive: Keepalive, now: number, watched: Watched, side: Side): boolean {
    const heard = watched.heard(side);
    if (watched.deaf(side) || heard !== keepalive.heard) {
      keepalive.heard = heard;
      keepalive.deadline = now + this.#policy.pongTimeoutMs;
      return true;
    }
    return now < keepalive.deadline;
  }
}
