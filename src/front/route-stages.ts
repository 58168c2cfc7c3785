/**
 * Each route's request stages, built from its frozen policy, cheap checks first: what both passes
 * run after routing (request-stage.ts). The removal of client copies of identity headers (on every
 * route), the Origin check, then the token check (crypto last), then the per-subject connection
 * cap, which needs the token's subject. A route whose policy asks for
 * no check has none.
 */
import type { KeySet } from '../auth/key-set.ts';
import type { GatewayMetrics } from '../observability/metrics.ts';
import { identityHeaders, type RoutePolicy } from '../policy/route-policy.ts';
import { identityHeadersStage } from './identity-headers.ts';
import { jwtStage } from './jwt-stage.ts';
import { originStage } from './origin-stage.ts';
import type { RequestStage } from './request-stage.ts';
import type { SubjectConnections } from './subject-limit.ts';

/** What the stages of every route share. */
export interface RouteStageDeps {
  readonly metrics: GatewayMetrics;
  readonly keySets: ReadonlyMap<string, KeySet>;
  /** The per-subject cap, when `admission.perSubject.maxConnections` is set. */
  readonly subjects: SubjectConnections | undefined;
  /** Wall-clock milliseconds, for token times. */
  readonly wallNow: () => number;
}

/** The stages of every route, by route name. */
export function buildRouteStages(
  policies: ReadonlyMap<string, RoutePolicy>,
  deps: RouteStageDeps,
): ReadonlyMap<string, readonly RequestStage[]> {
  const { metrics } = deps;
  const stages = new Map<string, readonly RequestStage[]>();
  const identity = identityHeadersStage(identityHeaders(policies));
  for (const [route, policy] of policies) {
    const list: RequestStage[] = identity ? [identity] : [];
    const origin = originStage(policy.origin, (reason) => metrics.originRefusals.inc({ route, reason }));
    if (origin) list.push(origin);
    const keySet = policy.auth === undefined ? undefined : deps.keySets.get(policy.auth.keySet);
    if (policy.auth !== undefined) {
      // The configuration's checks guarantee the key set exists.
      if (keySet === undefined) throw new Error(`route "${route}": no key set "${policy.auth.keySet}"`);
      list.push(
        jwtStage(policy.auth, keySet, {
          wallNow: deps.wallNow,
          onRefused: (reason) => metrics.authRefusals.inc({ route, reason }),
        }),
      );
      if (deps.subjects) list.push(deps.subjects.stage);
    }
    stages.set(route, Object.freeze(list));
  }
  return stages;
}
