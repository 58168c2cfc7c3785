/**
 * What the upgrade pipeline knows about one handshake while it is being decided: the request and
 * socket, where it came from, and what earlier stages found (route, its policy, pool). Stages read
 * and fill it.
 */
import type { Socket } from 'node:net';
import type {
  AuthFindings,
  DownstreamEdits,
  Rejection,
  RequestStage,
  UpstreamEdits,
} from '../front/request-stage.ts';
import type { ForwardedFor, TrustedProxies } from '../listener/client-address.ts';
import type { ListenerInfo } from '../listener/listener.ts';
import type { EventLog } from '../observability/connection-log.ts';
import type { QueryLogging } from '../observability/log-fields.ts';
import type { RoutePolicy } from '../policy/route-policy.ts';
import type { IncomingHead } from '../protocol/incoming-head.ts';
import type { Route } from '../routing/router.ts';
import type { Pool } from '../upstream/pool.ts';

export interface UpgradeContext {
  /** Which pass the route's request stages see this as (an upgrade is a FrontContext as it is). */
  readonly pass: 'upgrade';
  readonly id: string;
  /** Ties the gateway's log lines to the backend's (sent as X-Request-Id). */
  readonly requestId: string;
  readonly req: IncomingHead;
  readonly socket: Socket;
  readonly head: Buffer;
  readonly listener: ListenerInfo;
  /** performance.now() when the upgrade request arrived. */
  readonly startedAt: number;
  readonly forwarded: ForwardedFor;
  readonly log: EventLog;
  /** The configuration this upgrade runs under, taken once when it arrived: a reload never changes it mid-way. */
  readonly snapshot: UpgradeSnapshot;
  /** What the route's stages change in the request the backend receives. */
  readonly upstream: UpstreamEdits;
  /** What the 101 gets on top of the backend's headers (the affinity cookie). */
  readonly downstream: DownstreamEdits;
  /** What the route's token check found (the token, a subprotocol marker). */
  readonly auth: AuthFindings;
  // The fields below are filled by the stages; they start undefined so that every context has
  // one shape from its creation (no hidden-class transitions as stages fill them).
  route: Route | undefined;
  /** The route's policy, taken with the route: the tunnel keeps this one for its whole life. */
  policy: RoutePolicy | undefined;
  pool: Pool | undefined;
  /** The route's request stages (those for upgrades run after the gateway's own). */
  stages: readonly RequestStage[] | undefined;
}

export type { Rejection } from '../front/request-stage.ts';

/** What one configuration gives the upgrade pipeline: its stages and how requests are read and logged. */
export interface UpgradeSnapshot {
  readonly stages: readonly UpgradeStage[];
  readonly trustedProxies: TrustedProxies;
  /** How query strings appear in logged paths. */
  readonly query: QueryLogging;
}

/** One named step of the upgrade pipeline: passes (undefined) or rejects. */
export interface UpgradeStage {
  readonly name: string;
  run(ctx: UpgradeContext): Rejection | undefined | Promise<Rejection | undefined>;
}
