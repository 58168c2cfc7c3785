/**
 * Each route's request stages, built from its frozen policy, cheap checks first: what both passes
 * run after routing (request-stage.ts). A route whose policy asks for no check has none.
 */
import type { GatewayMetrics } from '../observability/metrics.ts';
import type { RoutePolicy } from '../policy/route-policy.ts';
import { originStage } from './origin-stage.ts';
import type { RequestStage } from './request-stage.ts';

/** The stages of every route, by route name. */
export function buildRouteStages(
  policies: ReadonlyMap<string, RoutePolicy>,
  metrics: GatewayMetrics,
): ReadonlyMap<string, readonly RequestStage[]> {
  const stages = new Map<string, readonly RequestStage[]>();
  for (const [route, policy] of policies) {
    const origin = originStage(policy.origin, (reason) => metrics.originRefusals.inc({ route, reason }));
    stages.set(route, Object.freeze(origin ? [origin] : []));
  }
  return stages;
}
