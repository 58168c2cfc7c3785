/**
 * Route resolution, the first step of the front half that upgrades and plain HTTP requests share:
 * from a request's Host and target to its route, the route's pool and the route's frozen policy.
 * Both passes resolve through here, so that a long-polling request and the WebSocket it upgrades
 * to reach the same route, pool and policy by the same rules.
 */
import type { RoutePolicy } from '../policy/route-policy.ts';
import type { IncomingHead } from '../protocol/incoming-head.ts';
import { hostName } from '../routing/host.ts';
import type { RouteLookup } from '../routing/route-lookup.ts';
import type { Route } from '../routing/router.ts';
import type { Pool } from '../upstream/pool.ts';
import type { RequestStage } from './request-stage.ts';

/** What a configuration routes by: the lookup, and the pool, policy and checks of each route by name. */
export interface RouteTable {
  readonly routes: RouteLookup;
  readonly pools: ReadonlyMap<string, Pool>;
  readonly policies: ReadonlyMap<string, RoutePolicy>;
  /** Each route's request stages, in the order they run; a route without checks has none. */
  readonly stages: ReadonlyMap<string, readonly RequestStage[]>;
}

/** A request's route, with its pool, policy and checks. */
export interface Resolved {
  readonly ok: true;
  readonly route: Route;
  readonly pool: Pool;
  readonly policy: RoutePolicy;
  readonly stages: readonly RequestStage[];
}

/** Why a request has no route: a target read two ways (400), or no route matches (404). */
export interface Unresolved {
  readonly ok: false;
  readonly code: 'REQUEST_MALFORMED' | 'ROUTE_NOT_FOUND';
  readonly detail?: string;
}

/** The route of `req` in `table`. */
export function resolveRoute(req: IncomingHead, table: RouteTable): Resolved | Unresolved {
  const found = table.routes.find(hostName(req.headers.host), req.url ?? '/');
  if (found.refused) return { ok: false, code: 'REQUEST_MALFORMED', detail: found.refused };
  const route = found.route;
  const pool = route ? table.pools.get(route.poolName) : undefined;
  const policy = route ? table.policies.get(route.name) : undefined;
  if (!route || !pool || !policy) return { ok: false, code: 'ROUTE_NOT_FOUND' };
  return { ok: true, route, pool, policy, stages: table.stages.get(route.name) ?? [] };
}
