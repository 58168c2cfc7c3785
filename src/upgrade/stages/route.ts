/**
 * Finds the route and pool for a handshake from its Host and path; no match is a 404 before any
 * backend is contacted. A request whose target or Host a backend could read differently from the
 * router (see routing/request-target.ts and routing/route-lookup.ts) is refused with 400.
 */

import type { RoutePolicy } from '../../policy/route-policy.ts';
import { hostName } from '../../routing/host.ts';
import { checkRequest } from '../../routing/request-target.ts';
import type { RouteLookup } from '../../routing/route-lookup.ts';
import type { Pool } from '../../upstream/pool.ts';
import type { UpgradeStage } from '../context.ts';

export function createRouteStage(
  routes: RouteLookup,
  pools: ReadonlyMap<string, Pool>,
  policies: ReadonlyMap<string, RoutePolicy>,
): UpgradeStage {
  return {
    name: 'route',
    run(ctx) {
      const malformed = checkRequest(ctx.req);
      if (malformed) return { code: 'REQUEST_MALFORMED', detail: malformed };
      const found = routes.find(hostName(ctx.req.headers.host), ctx.req.url ?? '/');
      if (found.refused) return { code: 'REQUEST_MALFORMED', detail: found.refused };
      const route = found.route;
      const pool = route ? pools.get(route.poolName) : undefined;
      const policy = route ? policies.get(route.name) : undefined;
      if (!route || !pool || !policy) return { code: 'ROUTE_NOT_FOUND' };
      ctx.route = route;
      ctx.policy = policy;
      ctx.pool = pool;
      return undefined;
    },
  };
}
