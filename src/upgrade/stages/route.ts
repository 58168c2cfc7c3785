/**
 * Finds the route, pool and policy of a handshake (src/front/resolve-route.ts, shared with the
 * plain HTTP pass); no match is a 404 before any backend is contacted. A request whose target or
 * Host a backend could read differently from the router (see routing/request-target.ts and
 * routing/route-lookup.ts) is refused with 400.
 */
import { type RouteTable, resolveRoute } from '../../front/resolve-route.ts';
import { checkRequest } from '../../routing/request-target.ts';
import type { UpgradeStage } from '../context.ts';

export function createRouteStage(table: RouteTable): UpgradeStage {
  return {
    name: 'route',
    run(ctx) {
      const malformed = checkRequest(ctx.req);
      if (malformed) return { code: 'REQUEST_MALFORMED', detail: malformed };
      const resolved = resolveRoute(ctx.req, table);
      if (!resolved.ok) {
        return resolved.detail === undefined
          ? { code: resolved.code }
          : { code: resolved.code, detail: resolved.detail };
      }
      ctx.route = resolved.route;
      ctx.policy = resolved.policy;
      ctx.pool = resolved.pool;
      ctx.stages = resolved.stages;
      return undefined;
    },
  };
}
