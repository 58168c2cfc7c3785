/**
 * The Origin check of a route (Cross-Site WebSocket Hijacking): a browser page on another site
 * can open a WebSocket to any host, with the user's cookies, and only the Origin header tells the
 * gateway where it came from. Upgrades are checked always; plain HTTP requests only when they
 * carry an Origin (browsers omit it on same-origin GETs such as long-polling), and only with
 * `plainHttp`. A refusal is a 403 before any backend is contacted.
 */
import type { OriginPolicy } from '../policy/route-policy.ts';
import { checkOrigin } from '../protocol/origin.ts';
import type { RequestStage } from './request-stage.ts';

/** Why an Origin was refused, as the metric names it. */
export type OriginRefusal = 'not_allowed' | 'missing' | 'malformed';

/** The stage for `policy`, or none when the route checks no Origin. */
export function originStage(
  policy: OriginPolicy,
  onRefused: (reason: OriginRefusal) => void,
): RequestStage | undefined {
  if (policy.allow.length === 0 && policy.missing === 'allow') return undefined;
  return {
    name: 'origin',
    appliesTo: policy.plainHttp ? 'both' : 'upgrade',
    run(ctx) {
      const origin = ctx.req.headers.origin;
      if (origin === undefined) {
        if (ctx.pass === 'request' || policy.missing === 'allow') return undefined;
        onRefused('missing');
        return { code: 'ORIGIN_REFUSED', detail: 'no Origin header' };
      }
      if (policy.allow.length === 0) return undefined; // only a missing Origin is refused
      const verdict = checkOrigin(origin, policy.allow);
      if (verdict === 'allowed') return undefined;
      onRefused(verdict);
      return {
        code: 'ORIGIN_REFUSED',
        detail: `origin ${JSON.stringify(origin.slice(0, 200))} ${verdict.replace('_', ' ')}`,
      };
    },
  };
}
