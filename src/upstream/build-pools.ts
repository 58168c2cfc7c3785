/**
 * The pools of a configuration, wired to the gateway's metrics, clock, log, DNS resolver and
 * connection registry: each backend's up gauge counts the addresses of its configured entry that
 * take new connections, and discovery reports its lookups and the addresses it keeps.
 */
import type { Clock } from '../clock.ts';
import type { Config } from '../config/schema.ts';
import type { Logger } from '../observability/logger.ts';
import type { GatewayMetrics } from '../observability/metrics.ts';
import type { BackendTunnels } from './backend-drain.ts';
import { type Resolver, systemResolver } from './discovery.ts';
import { Pool } from './pool.ts';

export interface PoolsDeps {
  readonly metrics: GatewayMetrics;
  readonly clock: Clock;
  readonly log: Logger;
  readonly tunnels: BackendTunnels;
  /** The DNS resolver for discovered backends (default: the system's name servers). */
  readonly resolver: Resolver | undefined;
}

export function buildPools(config: Config, deps: PoolsDeps): ReadonlyMap<string, Pool> {
  const { metrics, clock, log } = deps;
  const pools = new Map<string, Pool>();
  const countUp = (name: string, label: string): void => {
    const pool = pools.get(name);
    if (pool) metrics.backendUp.set({ pool: name, backend: label }, pool.upCount(label));
  };
  for (const [name, settings] of Object.entries(config.pools)) {
    const pool = new Pool(name, settings, {
      onPick: (algorithm) => metrics.picks.inc({ pool: name, algorithm }),
      clock,
      health: {
        clock,
        log,
        events: {
          changed: (backend) => countUp(name, backend.label),
          ejected: (backend) => metrics.ejections.inc({ pool: name, backend: backend.label }),
          checked: (backend, ok) =>
            metrics.healthChecks.inc({ pool: name, backend: backend.label, result: ok ? 'ok' : 'failed' }),
        },
      },
      discovery: {
        resolver: deps.resolver ?? systemResolver(settings.discovery.timeout),
        clock,
        log,
        tunnels: deps.tunnels,
        events: {
          looked: (label, ok) =>
            metrics.discoveryLookups.inc({ pool: name, backend: label, result: ok ? 'ok' : 'failed' }),
          membersChanged: (label) => {
            countUp(name, label);
            metrics.backendAddresses.set({ pool: name, backend: label }, pool.memberCount(label));
          },
        },
      },
    });
    pools.set(name, pool);
    for (const entry of settings.backends) {
      const label = new URL(entry.url).origin;
      countUp(name, label);
      if (entry.discover !== undefined) metrics.backendAddresses.set({ pool: name, backend: label }, 0);
    }
  }
  return pools;
}
