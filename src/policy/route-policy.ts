/**
 * What a route's connections obey, resolved once per configuration: the gateway-wide settings
 * with the route's own on top (defaults merged), frozen, one object per route. The upgrade context
 * takes its route's policy and hands it to the tunnel, so that a tunnel keeps the policy it started
 * with whatever the gateway loads later, and every limit a route can set has one place to live.
 */
import type { Config } from '../config/schema.ts';

/** The deadlines of a tunnel. */
export interface TunnelPolicy {
  /** Time a side has to finish closing before its socket is destroyed. */
  readonly closeTimeoutMs: number;
  /** Time a destination may take to drain what is queued for it before the tunnel ends. */
  readonly sendTimeoutMs: number;
}

export interface RoutePolicy {
  readonly tunnel: TunnelPolicy;
}

/** The policy of every route of `config`, by route name. */
export function resolvePolicies(config: Config): ReadonlyMap<string, RoutePolicy> {
  const policies = new Map<string, RoutePolicy>();
  for (const name of Object.keys(config.routes)) {
    policies.set(
      name,
      Object.freeze({
        tunnel: Object.freeze({
          closeTimeoutMs: config.tunnel.closeTimeout,
          sendTimeoutMs: config.tunnel.sendTimeout,
        }),
      }),
    );
  }
  return policies;
}
