/**
 * One configuration as the gateway runs it: the routes and their lookup, the pools, each route's
 * frozen policy and the stages built from it, the upgrade pipeline, the trusted proxies and how
 * requests are logged. A snapshot is built whole before anything uses it, then each request and
 * upgrade takes the one in force when it arrives and keeps it to the end, so that it runs under
 * one configuration, never a mix of two; a tunnel keeps its route's policy and its backend for
 * its whole life. What outlives configurations (listeners, the registry, metrics, the sweeper,
 * admission counts) belongs to the gateway and is handed in.
 */
import { createHash } from 'node:crypto';
import { buildKeySets, type KeySet } from './auth/key-set.ts';
import type { Clock } from './clock.ts';
import type { Config } from './config/schema.ts';
import type { RouteTable } from './front/resolve-route.ts';
import { buildRouteStages } from './front/route-stages.ts';
import type { SubjectConnections } from './front/subject-limit.ts';
import { HttpAccessLog } from './http/access-line.ts';
import type { HttpPassSnapshot } from './http/http-pass.ts';
import { TrustedProxies } from './listener/client-address.ts';
import type { QueryLogging } from './observability/log-fields.ts';
import type { Logger } from './observability/logger.ts';
import type { GatewayMetrics } from './observability/metrics.ts';
import { policyDeadlines, resolvePolicies, tokenParameters } from './policy/route-policy.ts';
import { RouteLookup } from './routing/route-lookup.ts';
import type { UpgradeSnapshot } from './upgrade/context.ts';
import type { Admission } from './upgrade/stages/admission.ts';
import { handshakeStage } from './upgrade/stages/handshake.ts';
import { createRouteStage } from './upgrade/stages/route.ts';
import type { BackendDrain, BackendTunnels } from './upstream/backend-drain.ts';
import { changePools } from './upstream/build-pools.ts';
import type { Resolver } from './upstream/discovery.ts';
import type { Pool } from './upstream/pool.ts';

/** What a snapshot is built with: the parts of the gateway that outlive configurations. */
export interface SnapshotDeps {
  readonly metrics: GatewayMetrics;
  readonly clock: Clock;
  readonly log: Logger;
  readonly tunnels: BackendTunnels;
  readonly resolver: Resolver | undefined;
  readonly wallNow: () => number;
  readonly admission: Admission;
  readonly subjects: SubjectConnections;
  /** Drains the backends a reload removes. */
  readonly drain: BackendDrain;
}

export interface ConfigSnapshot extends UpgradeSnapshot, HttpPassSnapshot {
  readonly config: Config;
  /** A short digest of the validated configuration: two loads of the same settings have the same. */
  readonly hash: string;
  /** Wall-clock milliseconds when it was loaded. */
  readonly loadedAt: number;
  readonly pools: ReadonlyMap<string, Pool>;
  readonly keySets: ReadonlyMap<string, KeySet>;
  /** The sweeper's tick this configuration needs: a quarter of its shortest deadline, at most 1 s. */
  readonly tickMs: number;
}

/** The digest of a validated configuration (secrets read from files included, never shown). */
export function configHash(config: Config): string {
  return createHash('sha256').update(JSON.stringify(config)).digest('hex').slice(0, 16);
}

/** A snapshot to be taken in, and what taking it in, or not, does. */
export interface SnapshotChange {
  readonly next: ConfigSnapshot;
  /** Starts what `next` brings (its new pools' checks and first lookups, its new key sets). */
  start(): Promise<void>;
  /** `next` is in force: what only the previous snapshot had stops, removed backends drain. */
  retire(): void;
  /** `next` will not be used: what `start` started stops. */
  abandon(): void;
  /** The pools of the previous snapshot that `next` does not keep. */
  readonly retiredPools: readonly Pool[];
}

/**
 * The snapshot of `config`, built against `previous` (the one in force, if any): pools and key
 * sets whose settings did not change are the same objects, so their state (health, balancers,
 * fetched keys) goes on; only what changed is built anew.
 */
export function changeSnapshot(
  previous: ConfigSnapshot | undefined,
  config: Config,
  deps: SnapshotDeps,
): SnapshotChange {
  const { metrics, clock, log } = deps;
  const poolsChange = changePools(config, previous?.pools ?? new Map(), {
    metrics,
    clock,
    log,
    tunnels: deps.tunnels,
    resolver: deps.resolver,
    drain: deps.drain,
  });
  const pools = poolsChange.pools;
  const policies = resolvePolicies(config);
  const keySets = new Map<string, KeySet>();
  const freshKeySets: KeySet[] = [];
  for (const [name, settings] of Object.entries(config.keySets)) {
    const kept = previous?.keySets.get(name);
    if (kept && JSON.stringify(previous?.config.keySets[name]) === JSON.stringify(settings)) {
      keySets.set(name, kept);
      continue;
    }
    const built = buildKeySets(
      { [name]: settings },
      {
        clock,
        log,
        onFetch: (keySet, result, keys) => {
          metrics.jwksFetches.inc({ key_set: keySet, result });
          metrics.jwksKeys.set({ key_set: keySet }, keys);
        },
      },
    ).get(name);
    if (built === undefined) continue;
    keySets.set(name, built);
    freshKeySets.push(built);
  }
  // Token query parameters are redacted from logged paths even with `log.query: keep`.
  const query: QueryLogging = { mode: config.log.query, secrets: tokenParameters(policies) };
  const table: RouteTable = {
    routes: new RouteLookup(config.routes),
    pools,
    policies,
    stages: buildRouteStages(policies, {
      metrics,
      keySets,
      subjects: config.admission.perSubject.maxConnections === 'off' ? undefined : deps.subjects,
      wallNow: deps.wallNow,
    }),
  };
  const shortest = Math.min(...[...policies.values()].flatMap((policy) => policyDeadlines(policy.tunnel)));
  const next: ConfigSnapshot = {
    config,
    hash: configHash(config),
    loadedAt: deps.wallNow(),
    table,
    pools,
    keySets,
    // Admission first: the cheapest check, and the one a flood must not get past.
    stages: [deps.admission.stage, handshakeStage, createRouteStage(table)],
    trustedProxies: new TrustedProxies(config.forwarding.trustedProxies),
    query,
    accessLog: new HttpAccessLog(log, { ...config.log.httpRequests, query }),
    tickMs: Math.min(1_000, Math.max(25, Math.floor(shortest / 4))),
  };
  return {
    next,
    retiredPools: poolsChange.retired,
    async start() {
      for (const keySet of freshKeySets) keySet.start();
      await Promise.all(poolsChange.fresh.map((pool) => pool.start()));
    },
    retire() {
      poolsChange.retire();
      for (const [name, keySet] of previous?.keySets ?? []) {
        if (keySets.get(name) !== keySet) keySet.stop();
      }
    },
    abandon() {
      for (const keySet of freshKeySets) keySet.stop();
      poolsChange.abandon();
    },
  };
}
