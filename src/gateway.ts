/**
 * The composition root: `createGateway(config, deps)` builds the long-lived shell of one gateway
 * (listeners, the connection registry, metrics, the sweeper, the upgrade handler and the HTTP
 * pass, the admission counts) and the snapshot of its configuration (routes, pools, policies and
 * the stages built from them, src/snapshot.ts) that each request and upgrade takes when it
 * arrives. It owns start and shutdown. Nothing lives at module level, so any number of gateways
 * can run in one process (the tests do exactly that). The admin server is not the gateway's: it
 * belongs to whoever reports on it (`status`, `isReady`, the metrics).
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
import type { AddressInfo } from 'node:net';
import type { AdminServerOptions } from './admin/admin-server.ts';
import { type StatusSource, statusReport } from './admin/status.ts';
import type { Config } from './config/schema.ts';
import { SubjectConnections } from './front/subject-limit.ts';
import { HttpPass } from './http/http-pass.ts';
import {
  type Phase,
  type ReloadOutcome,
  type ReloadResult,
  type ShutdownOptions,
  serialReloads,
} from './lifecycle.ts';
import { createLimitStore } from './limits/create-store.ts';
import { type ListenerChanges, ListenerSet } from './listener/listener-set.ts';
import { ConnectionRegistry } from './listener/registry.ts';
import type { Logger } from './observability/logger.ts';
import { GatewayMetrics } from './observability/metrics.ts';
import { type ConfigSnapshot, changeSnapshot, configHash } from './snapshot.ts';
import { type Clock, Sweeper, SYSTEM_CLOCK } from './tunnel/sweeper.ts';
import { Admission } from './upgrade/stages/admission.ts';
import { UpgradeHandler } from './upgrade/upgrade-handler.ts';
import { BackendDrain } from './upstream/backend-drain.ts';
import type { Resolver } from './upstream/discovery.ts';
import type { Pool } from './upstream/pool.ts';

export interface GatewayDeps {
  readonly log: Logger;
  readonly version: string;
  /** Time and the sweeper's timer (default: the system clock); tests pass a fake one. */
  readonly clock?: Clock;
  /** Wall-clock milliseconds, for token times (default: Date.now). */
  readonly wallNow?: () => number;
  /** DNS for discovered backends (default: the system's name servers); tests pass their own. */
  readonly resolver?: Resolver;
  /** Bind each listener with SO_REUSEPORT (a worker of a fleet with `listenerSharing: reusePort`). */
  readonly reusePort?: boolean;
}

export interface Gateway {
  readonly metrics: GatewayMetrics;
  readonly registry: ConnectionRegistry;
  /** What the admin server's `/status` shows of this gateway. */
  readonly status: StatusSource;
  /** The configuration in force. */
  config(): Config;
  /** Binds the listeners. Rejects (and closes what was bound) on failure. */
  start(): Promise<void>;
  /**
   * Loads a configuration with `load` (which throws on an invalid one) and puts it in force, after
   * any reload under way; a configuration that cannot be loaded or applied changes nothing.
   */
  reload(load: () => Config): Promise<ReloadOutcome>;
  /**
   * Graceful drain, then everything closed. Resolves when done; safe to call twice (a second call
   * with `immediate` cuts a running drain delay short).
   */
  shutdown(options?: ShutdownOptions): Promise<void>;
  /** Bound addresses by listener name (after start). */
  addresses(): Readonly<Record<string, AddressInfo>>;
  isReady(): boolean;
  /** Where the gateway is in its life (running, in its drain delay, draining). */
  phase(): Phase;
}

/** Settings a running gateway cannot change: they are read once, at start. */
function restartOnly(current: Config, next: Config): string[] {
  const fields: [string, unknown, unknown][] = [
    ['admin', current.admin.enabled, next.admin.enabled],
    ['admin.address', current.admin.address, next.admin.address],
    ['admin.port', current.admin.port, next.admin.port],
    ['log.format', current.log.format, next.log.format],
    ['workers', current.workers, next.workers],
    ['listenerSharing', current.listenerSharing, next.listenerSharing],
    ['admission.store', storeText(current), storeText(next)],
  ];
  return fields.filter(([, before, after]) => before !== after).map(([name]) => name);
}

/** `admission.store` as text, to compare (its files by content). */
function storeText(config: Config): string {
  return JSON.stringify(config.admission.store);
}

/** The per-subject connection cap of `config` (none: no limit). */
function subjectCap(config: Config): number {
  const max = config.admission.perSubject.maxConnections;
  return max === 'off' ? Number.POSITIVE_INFINITY : max;
}

export function createGateway(config: Config, deps: GatewayDeps): Gateway {
  const log = deps.log;
  const metrics = new GatewayMetrics(deps.version);
  const startedAt = Date.now();
  const registry = new ConnectionRegistry();
  const clock = deps.clock ?? SYSTEM_CLOCK;
  const wallNow = deps.wallNow ?? Date.now;
  const limits = createLimitStore(config.admission, { clock, log, metrics });
  const admission = new Admission(config.admission, limits);
  metrics.trackedClients = () => admission.tracked;
  metrics.limitStore = () => limits.state();
  const snapshotDeps = {
    metrics,
    clock,
    log,
    tunnels: registry,
    resolver: deps.resolver,
    wallNow,
    admission,
    subjects: new SubjectConnections(subjectCap(config), limits),
    drain: new BackendDrain(registry, clock),
  };
  const initial = changeSnapshot(undefined, config, snapshotDeps);
  let current: ConfigSnapshot = initial.next;
  let lastReload: ReloadOutcome | undefined;
  /** The reload running now, if any: the drain lets it end before closing what is in force. */
  let reloadUnderWay: Promise<void> = Promise.resolve();
  /** Pools replaced or removed by reloads: their drains may still run until shutdown closes them. */
  const retiredPools = new Set<Pool>();
  /** The start under way, if any: the drain lets it end before closing what it opened. */
  let startUnderWay: Promise<void> = Promise.resolve();
  const bootId = randomBytes(3).toString('hex');
  let sequence = 0;
  let phase: Phase = 'starting';
  let shutdownPromise: Promise<void> | undefined;
  let endDelay: (() => void) | undefined;
  const currentPhase = (): Phase => phase;
  const isDraining = (): boolean => phase === 'draining';
  const sweeper = new Sweeper(current.tickMs, clock);
  const upgrades = new UpgradeHandler({
    current: () => current,
    registry,
    metrics,
    log,
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
    current: () => current,
    metrics,
    registry,
    log,
    phase: currentPhase,
  });
  const listeners = new ListenerSet(
    {
      request: (req, res, info) => httpPass.handle(req, res, info),
      upgrade: (req, socket, head, info) => upgrades.handle(req, socket, head, info),
    },
    log,
    metrics,
    deps.reusePort,
  );

  const backendsReady = (): boolean => {
    const { config: settings, pools } = current;
    if (settings.admin.readiness !== 'healthyBackends') return true;
    return Object.values(settings.routes).every((route) => pools.get(route.pool)?.available ?? false);
  };
  const isReady = (): boolean => phase === 'running' && backendsReady();

  const showConfig = (snapshot: ConfigSnapshot): void => {
    metrics.configInfo.reset();
    metrics.configInfo.set({ hash: snapshot.hash }, 1);
    metrics.configLoaded.set(snapshot.loadedAt / 1000);
  };

  async function startNow(): Promise<void> {
    sweeper.start();
    await Promise.all([initial.start(), limits.start()]);
    // A shutdown began while the pools started: it closes what exists, so nothing is bound now.
    if (phase !== 'starting') return;
    try {
      await listeners.apply(current.config.listeners);
      showConfig(current);
      if (phase === 'starting') phase = 'running';
    } catch (error) {
      await closeEverything();
      throw error;
    }
  }

  function start(): Promise<void> {
    const starting = startNow();
    startUnderWay = starting.then(
      () => {},
      () => {},
    );
    return starting;
  }

  /** One reload, after any under way: load, build, bind, swap, then wind down what was left. */
  async function reloadNow(load: () => Config): Promise<ReloadOutcome> {
    const outcome = (result: ReloadResult, more: Partial<ReloadOutcome> = {}): ReloadOutcome => {
      lastReload = { result, hash: current.hash, at: new Date(wallNow()).toISOString(), ...more };
      metrics.configReloads.inc({ result });
      return lastReload;
    };
    if (phase !== 'running') return outcome('failed', { error: `the gateway is ${phase}` });
    let next: Config;
    try {
      next = load();
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      log.error({ err: message }, 'configuration reload refused; the running configuration is unchanged');
      return outcome('invalid', { error: message });
    }
    if (configHash(next) === current.hash) {
      log.info({ hash: current.hash }, 'configuration reloaded: nothing changed');
      return outcome('unchanged');
    }
    const change = changeSnapshot(current, next, snapshotDeps);
    let changes: ListenerChanges;
    try {
      await change.start();
      // A shutdown began while the new pools started: it closes what is in force, so nothing
      // new may be put in force now (the drain waits for this reload before closing).
      if (phase !== 'running') {
        change.abandon();
        return outcome('failed', { error: `the gateway is ${phase}` });
      }
      changes = await listeners.apply(next.listeners);
    } catch (error) {
      change.abandon();
      log.error({ err: error }, 'configuration reload failed; the running configuration is unchanged');
      return outcome('failed', { error: error instanceof Error ? error.message : String(error) });
    }
    const needsRestart = restartOnly(current.config, next);
    current = change.next;
    admission.reconfigure(next.admission);
    snapshotDeps.subjects.max = subjectCap(next);
    // Tunnels of the previous configuration keep their deadlines: the tick only ever gets shorter.
    sweeper.retune(Math.min(sweeper.intervalMs, current.tickMs));
    log.level = next.log.level;
    change.retire();
    for (const pool of change.retiredPools) retiredPools.add(pool);
    showConfig(current);
    const listenerChanges = Object.fromEntries(
      Object.entries(changes).filter(([, names]) => names.length > 0),
    );
    if (needsRestart.length > 0)
      log.warn({ settings: needsRestart }, 'these settings take effect at the next start');
    log.info({ hash: current.hash, listeners: listenerChanges }, 'configuration reloaded');
    return outcome('ok', {
      listeners: listenerChanges,
      ...(needsRestart.length > 0 ? { needsRestart } : {}),
    });
  }

  async function closeEverything(): Promise<void> {
    registry.destroyAll();
    listeners.closeAllConnections();
    // Destroyed sockets report 'close' on a later tick; teardown (metrics, access log) follows it.
    let grace: NodeJS.Timeout | undefined;
    await Promise.race([
      registry.whenEmpty(),
      new Promise<void>((resolve) => {
        grace = setTimeout(resolve, 1_000);
      }),
    ]);
    clearTimeout(grace);
    await listeners.stopAccepting();
    httpPass.close();
    sweeper.stop();
    for (const keySet of current.keySets.values()) keySet.stop();
    for (const pool of [...current.pools.values(), ...retiredPools]) pool.close();
    snapshotDeps.drain.stop();
    await limits.close();
  }

  /** Not ready, still serving, for `drainDelay` (or until an immediate shutdown cuts it short). */
  async function delay(options: ShutdownOptions): Promise<void> {
    const delayMs = current.config.shutdown.drainDelay;
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
    // A start or a reload under way ends first (either gives up once its pools have started).
    await startUnderWay;
    await reloadUnderWay;
    const tunnels = registry.tunnels();
    log.info(
      { tunnels: tunnels.length, pending: registry.pendingCount, requests: registry.requestCount },
      'draining',
    );
    const spreadTimers = tunnels.map((tunnel) => {
      const timer = setTimeout(
        () => tunnel.close('GATEWAY_SHUTDOWN'),
        Math.random() * current.config.shutdown.closeSpread,
      );
      return timer;
    });
    let deadline: NodeJS.Timeout | undefined;
    const remainingMs = Math.max(0, current.config.shutdown.drainTimeout - (performance.now() - signalledAt));
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

  const status: StatusSource = {
    version: deps.version,
    startedAt,
    phase: currentPhase,
    current: () => current,
    lastReload: () => lastReload,
    addresses: () => listeners.addresses(),
    limitStore: () => limits.state(),
    totals: () => ({
      tunnels: registry.tunnelCount,
      handshakes: registry.pendingCount,
      requests: registry.requestCount,
    }),
  };

  return {
    metrics,
    registry,
    status,
    config: () => current.config,
    start,
    reload: serialReloads((load: () => Config) => {
      const running = reloadNow(load);
      reloadUnderWay = running.then(
        () => {},
        () => {},
      );
      return running;
    }),
    shutdown: (options: ShutdownOptions = {}) => {
      if (shutdownPromise && options.immediate) endDelay?.();
      shutdownPromise ??= drain(options);
      return shutdownPromise;
    },
    addresses: () => listeners.addresses(),
    isReady,
    phase: currentPhase,
  };
}

/** What the admin server needs of `gateway`. */
export function adminOptions(
  gateway: Gateway,
  log: Logger,
  reload?: () => Promise<ReloadOutcome>,
): AdminServerOptions {
  return {
    metrics: gateway.metrics,
    log,
    isReady: () => gateway.isReady(),
    status: () => statusReport(gateway.status),
    ...(reload ? { reload } : {}),
  };
}
