/**
 * What `/status.json` reports, taken from the live gateway when asked: its version, phase and
 * uptime; listeners; routes with the checks they run; pools with their balancing and, for each
 * backend (an address, with the entry it comes from), its state, weight, open WebSockets and
 * plain requests, picks and failures; and the gateway's totals.
 */
import type { Config } from '../config/schema.ts';
import type { ReloadOutcome } from '../lifecycle.ts';
import type { LimitStoreState } from '../limits/limit-store.ts';
import type { Pool } from '../upstream/pool.ts';

export interface StatusSource {
  readonly version: string;
  readonly startedAt: number;
  readonly phase: () => string;
  /** The configuration in force and its pools. */
  readonly current: () => {
    readonly config: Config;
    readonly pools: ReadonlyMap<string, Pool>;
    readonly hash: string;
    readonly loadedAt: number;
  };
  /** How the last reload ended, if there was one. */
  readonly lastReload: () => ReloadOutcome | undefined;
  readonly addresses: () => Readonly<Record<string, { address: string; port: number }>>;
  /** Where the per-client and per-subject limits count, and whether it answers. */
  readonly limitStore: () => LimitStoreState;
  readonly totals: () => { readonly tunnels: number; readonly handshakes: number; readonly requests: number };
}

export function statusReport(source: StatusSource) {
  const { config, pools, hash, loadedAt } = source.current();
  const bound = source.addresses();
  return {
    version: source.version,
    phase: source.phase(),
    uptimeSeconds: Math.round((Date.now() - source.startedAt) / 1000),
    totals: source.totals(),
    limitStore: source.limitStore(),
    configuration: {
      hash,
      loadedAt: new Date(loadedAt).toISOString(),
      lastReload: source.lastReload() ?? null,
    },
    listeners: Object.entries(config.listeners).map(([name, listener]) => ({
      name,
      address: bound[name]?.address ?? listener.address,
      port: bound[name]?.port ?? listener.port,
      tls: listener.tls !== undefined,
      proxyProtocol: listener.proxyProtocol,
    })),
    routes: Object.entries(config.routes).map(([name, route]) => ({
      name,
      hosts: route.hosts,
      path: route.path,
      pool: route.pool,
      token: (route.auth?.keySet ?? config.auth.keySet) !== 'off',
    })),
    pools: [...pools.values()].map((pool) => ({
      name: pool.name,
      balance: pool.config.balance,
      sticky: pool.stickySources.map((entry) => (typeof entry === 'string' ? entry : Object.keys(entry)[0])),
      backends: pool.backends.map((backend) => ({
        url: backend.id,
        /** The configured entry it comes from (its own URL, or the name discovery found it under). */
        entry: backend.label,
        state: backend.state,
        weight: backend.weight,
        activeRequests: backend.activeRequests,
        websockets: backend.activeTunnels,
        picks: backend.stats.picks,
        failures: backend.stats.failures,
        lastFailureAt:
          backend.stats.lastFailureAt === undefined
            ? null
            : new Date(backend.stats.lastFailureAt).toISOString(),
      })),
    })),
  };
}

export type StatusReport = ReturnType<typeof statusReport>;
