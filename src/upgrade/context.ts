/**
 * What the upgrade pipeline knows about one handshake while it is being decided: the request and
 * socket, where it came from, and what earlier stages found (route, its policy, pool). Stages read
 * and fill it.
 */
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { ErrorCode } from '../errors/codes.ts';
import type { ForwardedFor } from '../listener/client-address.ts';
import type { ListenerInfo } from '../listener/listener.ts';
import type { Logger } from '../observability/logger.ts';
import type { RoutePolicy } from '../policy/route-policy.ts';
import type { Route } from '../routing/router.ts';
import type { Pool } from '../upstream/pool.ts';

export interface UpgradeContext {
  readonly id: string;
  /** Ties the gateway's log lines to the backend's (sent as X-Request-Id). */
  readonly requestId: string;
  readonly req: IncomingMessage;
  readonly socket: Socket;
  readonly head: Buffer;
  readonly listener: ListenerInfo;
  /** performance.now() when the upgrade request arrived. */
  readonly startedAt: number;
  readonly forwarded: ForwardedFor;
  readonly log: Logger;
  route?: Route;
  /** The route's policy, taken with the route: the tunnel keeps this one for its whole life. */
  policy?: RoutePolicy;
  pool?: Pool;
}

/** A stage's decision to refuse the handshake. */
export interface Rejection {
  readonly code: ErrorCode;
  /** Extra response headers, e.g. `Sec-WebSocket-Version: 13` with a 426. */
  readonly headers?: readonly (readonly [string, string])[];
  /** For the log only; never sent to the client. */
  readonly detail?: string;
}

/** One named step of the upgrade pipeline: passes (undefined) or rejects. */
export interface UpgradeStage {
  readonly name: string;
  run(ctx: UpgradeContext): Rejection | undefined | Promise<Rejection | undefined>;
}
