/**
 * The composition root: `createGateway(config, deps)` builds every part of one gateway from a
 * validated configuration (pools, router, upgrade pipeline, HTTP pass, listeners, admin server,
 * metrics) and returns start and shutdown. Nothing lives at module level, so any number of
 * gateways can run in one process (the tests do exactly that).
 *
 * Shutdown (SIGTERM) follows the order that loses nothing: readiness fails at once, and for
 * `drainDelay` the gateway keeps serving (plain HTTP responses close their keep-alive
 * connections) while load balancers and Kubernetes endpoints stop sending it traffic; then the
 * drain: listeners stay open but answer new upgrades and requests with 503, `Retry-After` and
 * `Connection: close` (a clean answer a client retries elsewhere, rather than a refused
 * connection); every live tunnel gets a 1001 close, spread over `closeSpread` so clients do not
 * all reconnect in the same instant; in-flight HTTP requests finish. When nothing is left, or at
 * `drainTimeout` after the signal, whatever remains is destroyed and the listeners close.
 */
import { randomBytes } from 'node:crypto';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createAdminServer } from './admin/admin-server.ts';
import { buildKeySets } from './auth/key-set.ts';
import type { Config } from './config/schema.ts';
import type { RouteTable } from './front/resolve-route.ts';
import { buildRouteStages } from './front/route-stages.ts';
import { SubjectConnections } from './front/subject-limit.ts';
import { HttpPass } from './http/http-pass.ts';
import type { Phase, ShutdownOptions } from './lifecycle.ts';
import { TrustedProxies } from './listener/client-address.ts';
import { bindError, Listener } from './listener/listener.ts';
import { ConnectionRegistry } from './listener/registry.ts';
import type { QueryLogging } from './observability/log-fields.ts';
import type { Logger } from './observability/logger.ts';
import { GatewayMetrics } from './observability/metrics.ts';
import { policyDeadlines, resolvePolicies, tokenParameters } from './policy/route-policy.ts';
import { RouteLookup } from './routing/route-lookup.ts';
import { type Clock, Sweeper, SYSTEM_CLOCK } from './tunnel/sweeper.ts';
import type { UpgradeStage } from './upgrade/context.ts';
import { Admission } from './upgrade/stages/admission.ts';
import { handshakeStage } from './upgrade/stages/handshake.ts';
import { createRouteStage } from './upgrade/stages/route.ts';
import { UpgradeHandler } from './upgrade/upgrade-handler.ts';
import { buildPools } from './upstream/build-pools.ts';
import type { Resolver } from './upstream/discovery.ts';

export interface GatewayDeps {
  readonly log: Logger;
  readonly version: string;
  /** Time and the sweeper's timer (default: the system clock); tests pass a fake one. */
  readonly clock?: Clock;
  /** Wall-clock milliseconds, for token times (default: Date.now). */
  readonly wallNow?: () => number;
  /** DNS for discovered backends (default: the system's name servers); tests pass their own. */
  readonly resolver?: Resolver;
}

export interface Gateway {
  readonly metrics: GatewayMetrics;
  readonly registry: ConnectionRegistry;
  /** Binds the listeners and the admin server. Rejects (and closes what was bound) on failure. */
  start(): Promise<void>;
  /**
   * Graceful drain, then everything closed. Resolves when done; safe to call twice (a second call
   * with `immediate` cuts a running drain delay short).
   */
  shutdown(options?: ShutdownOptions): Promise<void>;
  /** Bound addresses by listener name (after start). */
  addresses(): Readonly<Record<string, AddressInfo>>;
  /** The admin server's address, if it is enabled and started. */
  adminAddress(): AddressInfo | undefined;
  isReady(): boolean;
  /** Where the gateway is in its life (running, in its drain delay, draining). */
  phase(): Phase;
}

export function createGateway(config: Config, deps: GatewayDeps): Gateway {
  const log = deps.log;
  const metrics = new GatewayMetrics(deps.version);
  const startedAt = Date.now();
  const registry = new ConnectionRegistry();
  const clock = deps.clock ?? SYSTEM_CLOCK;
  const pools = buildPools(config, {
    metrics,
    clock,
    log,
    tunnels: registry,
    resolver: deps.resolver,
  });
  const routes = new RouteLookup(config.routes);
  const policies = resolvePolicies(config);
  const trustedProxies = new TrustedProxies(config.forwarding.trustedProxies);
  const bootId = randomBytes(3).toString('hex');
  let sequence = 0;
  let phase: Phase = 'starting';
  let shutdownPromise: Promise<void> | undefined;
  let endDelay: (() => void) | undefined;
  const currentPhase = (): Phase => phase;
  const isDraining = (): boolean => phase === 'draining';

  // Each route's own checks (its Origin policy), run by both passes after routing.
  const wallNow = deps.wallNow ?? Date.now;
  const keySets = buildKeySets(config.keySets, {
    clock,
    log,
    onFetch: (keySet, result, keys) => {
      metrics.jwksFetches.inc({ key_set: keySet, result });
      metrics.jwksKeys.set({ key_set: keySet }, keys);
    },
  });
  // Token query parameters are redacted from logged paths even with `log.query: keep`.
  const query: QueryLogging = { mode: config.log.query, secrets: tokenParameters(policies) };
  const perSubject = config.admission.perSubject.maxConnections;
  const subjects = perSubject === 'off' ? undefined : new SubjectConnections(perSubject);
  const table: RouteTable = {
    routes,
    pools,
    policies,
    stages: buildRouteStages(policies, { metrics, keySets, subjects, wallNow }),
  };
  // Admission first: the cheapest check, and the one a flood must not get past.
  const admission = new Admission(config.admission, clock);
  metrics.trackedClients = () => admission.tracked;
  const stages: UpgradeStage[] = [admission.stage, handshakeStage, createRouteStage(table)];
  // Ticks often enough that every route's deadlines fire within a quarter of their length (at most
  // 1 s late).
  const shortest = Math.min(...[...policies.values()].flatMap((policy) => policyDeadlines(policy.tunnel)));
  const sweeper = new Sweeper(Math.min(1_000, Math.max(25, Math.floor(shortest / 4))), clock);
  const upgrades = new UpgradeHandler({
    stages,
    registry,
    metrics,
    log,
    trustedProxies,
    query,
    tunnels: {
      sweeper,
      clock,
      backpressure: metrics.backpressure,
    },
    nextId: () => `${bootId}-${(++sequence).toString(36)}`,
    isDraining,
    wallNow,
  });
  const httpPass = new HttpPass({
    table,
    trustedProxies,
    metrics,
    registry,
    log,
    phase: currentPhase,
    accessLog: { ...config.log.httpRequests, query },
  });
  const listeners = Object.entries(config.listeners).map(
    ([name, listenerConfig]) =>
      new Listener(
        name,
        listenerConfig,
        {
          request: (req, res, info) => httpPass.handle(req, res, info),
          upgrade: (req, socket, head, info) => upgrades.handle(req, socket, head, info),
        },
        log,
        metrics,
      ),
  );
  const bound: Record<string, AddressInfo> = {};
  let admin: Server | undefined;

  const routePools = [...new Set(Object.values(config.routes).map((route) => pools.get(route.pool)))];
  const backendsReady = (): boolean =>
    config.admin.readiness !== 'healthyBackends' || routePools.every((pool) => pool?.available ?? false);
  const isReady = (): boolean => phase === 'running' && backendsReady();

  async function start(): Promise<void> {
    sweeper.start();
    for (const keySet of keySets.values()) keySet.start();
    await Promise.all([...pools.values()].map((pool) => pool.start()));
    try {
      for (const listener of listeners) {
        bound[listener.name] = await listener.listen();
        const address = bound[listener.name];
        log.info(
          {
            listener: listener.name,
            address: address?.address,
            port: address?.port,
            tls: !!listener.config.tls,
          },
          'listening',
        );
      }
      if (config.admin.enabled) {
        const server = createAdminServer({
          metrics,
          log,
          isReady,
          status: {
            version: deps.version,
            startedAt,
            phase: currentPhase,
            config,
            pools,
            addresses: () => bound,
            totals: () => ({
              tunnels: registry.tunnelCount,
              handshakes: registry.pendingCount,
              requests: registry.requestCount,
            }),
          },
        });
        admin = server;
        await new Promise<void>((resolve, reject) => {
          const onError = (error: Error): void =>
            reject(bindError('the admin server', config.admin.address, config.admin.port, error));
          server.once('error', onError);
          server.listen({ host: config.admin.address, port: config.admin.port }, () => {
            server.off('error', onError);
            resolve();
          });
        });
        const address = server.address() as AddressInfo;
        log.info({ address: address.address, port: address.port }, 'admin listening');
      }
      if (phase === 'starting') phase = 'running';
    } catch (error) {
      await closeEverything();
      throw error;
    }
  }

  async function closeEverything(): Promise<void> {
    registry.destroyAll();
    for (const listener of listeners) listener.closeAllConnections();
    // Destroyed sockets report 'close' on a later tick; teardown (metrics, access log) follows it.
    let grace: NodeJS.Timeout | undefined;
    await Promise.race([
      registry.whenEmpty(),
      new Promise<void>((resolve) => {
        grace = setTimeout(resolve, 1_000);
      }),
    ]);
    clearTimeout(grace);
    await Promise.all(listeners.map((listener) => listener.stopAccepting()));
    httpPass.close();
    sweeper.stop();
    for (const keySet of keySets.values()) keySet.stop();
    for (const pool of pools.values()) pool.close();
    const adminServer = admin;
    if (adminServer?.listening) {
      await new Promise<void>((resolve) => {
        adminServer.close(() => resolve());
        adminServer.closeAllConnections();
      });
    }
  }

  /** Not ready, still serving, for `drainDelay` (or until an immediate shutdown cuts it short). */
  async function delay(options: ShutdownOptions): Promise<void> {
    const delayMs = config.shutdown.drainDelay;
    if (options.immediate || delayMs === 0) return;
    log.info({ drainDelayMs: delayMs }, 'not ready; serving until the drain starts');
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, delayMs);
      endDelay = () => {
        clearTimeout(timer);
        resolve();
      };
    });
    endDelay = undefined;
  }

  async function drain(options: ShutdownOptions): Promise<void> {
    const signalledAt = performance.now();
    phase = 'stopping'; // not ready from this instant
    metrics.draining.set(1);
    await delay(options);
    phase = 'draining';
    const tunnels = registry.tunnels();
    log.info(
      { tunnels: tunnels.length, pending: registry.pendingCount, requests: registry.requestCount },
      'draining',
    );
    const spreadTimers = tunnels.map((tunnel) => {
      const timer = setTimeout(
        () => tunnel.close('GATEWAY_SHUTDOWN'),
        Math.random() * config.shutdown.closeSpread,
      );
      return timer;
    });
    let deadline: NodeJS.Timeout | undefined;
    const remainingMs = Math.max(0, config.shutdown.drainTimeout - (performance.now() - signalledAt));
    const timedOut = await Promise.race([
      registry.whenEmpty().then(() => false),
      new Promise<boolean>((resolve) => {
        deadline = setTimeout(() => resolve(true), remainingMs);
      }),
    ]);
    clearTimeout(deadline);
    for (const timer of spreadTimers) clearTimeout(timer);
    if (timedOut) {
      log.warn(
        { tunnels: registry.tunnelCount, pending: registry.pendingCount },
        'drain timeout reached, closing what is left',
      );
    }
    await closeEverything();
    log.info('stopped');
  }

  return {
    metrics,
    registry,
    start,
    shutdown: (options: ShutdownOptions = {}) => {
      if (shutdownPromise && options.immediate) endDelay?.();
      shutdownPromise ??= drain(options);
      return shutdownPromise;
    },
    addresses: () => bound,
    adminAddress: () => (admin?.listening ? (admin.address() as AddressInfo) : undefined),
    isReady,
    phase: currentPhase,
  };
}
