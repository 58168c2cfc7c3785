/**
 * Finds the route and pool for a handshake from its Host and path; no match is a 404 before any
 * backend is contacted. A request whose target or Host a backend could read differently from the
 * router (see routing/request-target.ts and routing/route-lookup.ts) is refused with 400.
 */

import { hostName } from '../../routing/host.ts';
import { checkRequest } from '../../routing/request-target.ts';
import type { RouteLookup } from '../../routing/route-lookup.ts';
import type { Pool } from '../../upstream/pool.ts';
import type { UpgradeStage } from '../context.ts';

export function createRouteStage(routes: RouteLookup, pools: ReadonlyMap<string, Pool>): UpgradeStage {
  return {
    name: 'route',
    run(ctx) {
      const malformed = checkRequest(ctx.req);
      if (malformed) return { code: 'REQUEST_MALFORMED', detail: malformed };
      const found = routes.find(hostName(ctx.req.headers.host), ctx.req.url ?? '/');
      if (found.refused) return { code: 'REQUEST_MALFORMED', detail: found.refused };
      const route = found.route;
      const pool = route ? pools.get(route.poolName) : undefined;
      if (!route || !pool) return { code: 'ROUTE_NOT_FOUND' };
      ctx.route = route;
      ctx.pool = pool;
      return undefined;
    },
  };
}
