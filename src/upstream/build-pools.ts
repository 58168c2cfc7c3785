/**
 * The pools of a configuration, wired to the gateway's metrics, clock, log, DNS resolver and
 * connection registry: each backend's up gauge counts the addresses of its configured entry that
 * take new connections, and discovery reports its lookups and the addresses it keeps.
 *
 * Against the pools of the configuration it replaces (`changePools`): a pool whose settings are
 * the same is kept as it is (health, balancer state, keep-alive connections: sticky keys stay
 * where they are); a changed one is built anew and carries over the backends it still lists; a
 * backend no pool carries over is drained (`BACKEND_REMOVED` after the old pool's drainTimeout,
 * spread over `shutdown.closeSpread`), and the pools left behind stop their checks and lookups.
 */
import type { Clock } from '../clock.ts';
import type { Config, PoolConfig } from '../config/schema.ts';
import type { Logger } from '../observability/logger.ts';
import type { CountCell, GatewayMetrics } from '../observability/metrics.ts';
import type { BackendDrain, BackendTunnels } from './backend-drain.ts';
import { type Resolver, systemResolver } from './discovery.ts';
import { type PickAlgorithm, Pool } from './pool.ts';

export interface PoolsDeps {
  readonly metrics: GatewayMetrics;
  readonly clock: Clock;
  readonly log: Logger;
  readonly tunnels: BackendTunnels;
  /** The DNS resolver for discovered backends (default: the system's name servers). */
  readonly resolver: Resolver | undefined;
  /** Drains the backends a reload removes. */
  readonly drain: BackendDrain;
}

/** The pools of a new configuration, and what taking them in or leaving them does. */
export interface PoolsChange {
  readonly pools: ReadonlyMap<string, Pool>;
  /**
   * Pools built for this configuration that succeed none: they start before the swap (their
   * first lookups awaited). Those that succeed a pool start once the swap is done (`retire`),
   * since they share backends with the pool in force.
   */
  readonly fresh: readonly Pool[];
  /** The new pools are in force: the previous ones left behind stop, removed backends drain. */
  retire(): void;
  /** The previous pools this configuration does not keep (closed at shutdown if not before). */
  readonly retired: readonly Pool[];
  /** The new pools were never used: those built for them close. */
  abandon(): void;
}

const samePool = (a: PoolConfig, b: PoolConfig): boolean => JSON.stringify(a) === JSON.stringify(b);

export function changePools(
  config: Config,
  previous: ReadonlyMap<string, Pool>,
  deps: PoolsDeps,
): PoolsChange {
  const pools = buildPools(config, deps, previous);
  const built = [...pools.values()].filter((pool) => previous.get(pool.name) !== pool);
  return {
    pools,
    fresh: built.filter((pool) => !previous.has(pool.name)),
    retired: [...previous.values()].filter((old) => pools.get(old.name) !== old),
    retire() {
      // Backends a previous reload took out and this one lists again: their drain is called off.
      for (const pool of built) {
        for (const backend of pool.members) if (deps.drain.has(backend)) deps.drain.cancel(backend);
      }
      for (const old of previous.values()) {
        const successor = pools.get(old.name);
        if (successor === old) continue;
        for (const backend of old.members) {
          if (successor?.member(backend.id) === backend) continue;
          old.remove(backend);
          deps.drain.start(
            backend,
            old.config.drainTimeout,
            () => old.left(backend),
            config.shutdown.closeSpread,
          );
        }
        old.retire();
        if (successor !== undefined) {
          successor.takeOver();
          void successor.start();
        }
        const labels = new Set(successor?.members.map((backend) => backend.label));
        for (const entry of old.config.backends) {
          const label = new URL(entry.url).origin;
          if (labels.has(label)) continue;
          deps.metrics.backendUp.remove({ pool: old.name, backend: label });
          deps.metrics.backendAddresses.remove({ pool: old.name, backend: label });
        }
      }
    },
    abandon() {
      for (const pool of built) pool.close();
    },
  };
}

/** The pools of `config`; with `previous`, unchanged ones are kept and changed ones succeed them. */
export function buildPools(
  config: Config,
  deps: PoolsDeps,
  previous: ReadonlyMap<string, Pool> = new Map(),
): ReadonlyMap<string, Pool> {
  const { metrics, clock, log } = deps;
  const pools = new Map<string, Pool>();
  const countUp = (name: string, label: string): void => {
    const pool = pools.get(name);
    if (pool) metrics.backendUp.set({ pool: name, backend: label }, pool.upCount(label));
  };
  for (const [name, settings] of Object.entries(config.pools)) {
    const before = previous.get(name);
    if (before !== undefined && samePool(before.config, settings)) {
      pools.set(name, before);
      continue;
    }
    const picked: Partial<Record<PickAlgorithm, CountCell>> = {};
    const pool = new Pool(name, settings, {
      ...(before ? { previous: before } : {}),
      reclaim: (id) => deps.drain.find(name, id),
      onPick: (algorithm) => {
        const cell = picked[algorithm] ?? metrics.pickCell(name, algorithm);
        picked[algorithm] = cell;
        cell.value++;
      },
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
      if (entry.discover !== undefined) {
        metrics.backendAddresses.set({ pool: name, backend: label }, pool.memberCount(label));
      }
    }
  }
  return pools;
}
