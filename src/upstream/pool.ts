/**
 * The runtime side of a configured pool: its backends with their connection details, the balancer
 * that orders them for each new connection, and the keep-alive agents used for plain HTTP. A pool
 * is built once per configuration and owns no sockets of its own beyond those agents.
 */
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import type { Clock } from '../clock.ts';
import type { StickySource } from '../config/balance-schema.ts';
import type { PoolConfig } from '../config/schema.ts';
import type { Logger } from '../observability/logger.ts';
import { AffinityCookie } from '../routing/affinity-cookie.ts';
import { type Balancer, RoundRobinBalancer } from '../routing/balancer.ts';
import { LeastConnectionsBalancer } from '../routing/least-connections.ts';
import { RendezvousBalancer } from '../routing/rendezvous.ts';
import type { Backend, BackendState, BackendTls } from './backend.ts';
import { type HealthEvents, PoolHealth } from './pool-health.ts';

export type { Backend, BackendState, BackendTls } from './backend.ts';

/** What chose a connection's backend: consistent hashing on its sticky key, or the pool's balance. */
export type PickAlgorithm = 'sticky' | PoolConfig['balance'];

/** What a pool is built with beside its configuration. */
export interface PoolDeps {
  /** Counts each choice by the algorithm that made it (the picks metric). */
  readonly onPick?: (algorithm: PickAlgorithm) => void;
  /** Runs the pool's health checks with this clock, reporting to these events. */
  readonly health?: { clock: Clock; events: HealthEvents; log: Logger };
}

export class Pool {
  readonly name: string;
  readonly config: PoolConfig;
  readonly backends: readonly Backend[];
  readonly tls: BackendTls;
  /** For connections without a sticky key. */
  readonly #balancer: Balancer<Backend>;
  /** Consistent hashing for connections with one, when the pool is sticky. */
  readonly #hashing: Balancer<Backend> | undefined;
  /** Where a connection's sticky key comes from; empty when the pool is not sticky. */
  readonly stickySources: readonly StickySource[];
  /** The gateway's affinity cookie, when the sources list it. */
  readonly affinityCookie: AffinityCookie | undefined;
  readonly httpAgent: HttpAgent;
  readonly httpsAgent: HttpsAgent;

  readonly #onPick: (algorithm: PickAlgorithm) => void;
  /** The health checks, when the gateway runs them (a pool built without `deps.health` has none). */
  readonly #health: PoolHealth | undefined;

  constructor(name: string, config: PoolConfig, deps: PoolDeps = {}) {
    this.#onPick = deps.onPick ?? (() => {});
    this.name = name;
    this.config = config;
    this.backends = config.backends.map((backend) => {
      const url = new URL(backend.url);
      const secure = url.protocol === 'https:';
      return {
        id: url.origin,
        poolName: name,
        url,
        secure,
        host: url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname,
        port: url.port ? Number(url.port) : secure ? 443 : 80,
        weight: backend.weight,
        activeTunnels: 0,
        state: 'up' as BackendState,
        stats: { picks: 0, failures: 0, lastFailureAt: undefined },
      };
    });
    this.tls = {
      ca: config.tls.ca?.pem,
      servername: config.tls.serverName,
      rejectUnauthorized: config.tls.verify,
    };
    this.#health =
      deps.health === undefined
        ? undefined
        : new PoolHealth(this.backends, config.health, this.tls, deps.health);
    this.#balancer =
      config.balance === 'least_connections'
        ? new LeastConnectionsBalancer(this.backends)
        : new RoundRobinBalancer(this.backends);
    this.stickySources = config.sticky?.from ?? [];
    const cookie = config.sticky?.cookie;
    this.affinityCookie =
      cookie !== undefined && this.stickySources.includes('affinityCookie')
        ? new AffinityCookie(
            {
              name: cookie.name,
              maxAgeSeconds: cookie.maxAge === 'off' ? undefined : Math.ceil(cookie.maxAge / 1000),
              sameSite: cookie.sameSite,
              path: cookie.path,
              secret: cookie.secretEnv ?? cookie.secretFile,
            },
            name,
          )
        : undefined;
    const loadFactor = config.sticky?.loadFactor;
    this.#hashing =
      config.sticky === undefined
        ? undefined
        : new RendezvousBalancer(this.backends, loadFactor === 'off' ? undefined : loadFactor);
    this.httpAgent = new HttpAgent({ keepAlive: true, maxFreeSockets: 64 });
    this.httpsAgent = new HttpsAgent({
      keepAlive: true,
      maxFreeSockets: 64,
      ...(this.tls.ca ? { ca: this.tls.ca } : {}),
      ...(this.tls.servername ? { servername: this.tls.servername } : {}),
      rejectUnauthorized: this.tls.rejectUnauthorized,
    });
  }

  /**
   * Backends to try for one new connection, best first, at most `1 + retries` of them: those that
   * are up, in the order of consistent hashing for a sticky `key`, else of the pool's `balance`; when none is up, every one (a pool that may be
   * wrong about all of its backends still tries them rather than refuse everything).
   */
  candidates(key: string | undefined): Backend[] {
    const hashed = key !== undefined && this.#hashing !== undefined;
    const isUp = (backend: Backend): boolean => backend.state === 'up';
    const ordered = hashed ? (this.#hashing?.candidates(key) ?? []) : this.#balancer.candidates(key, isUp);
    this.#onPick(hashed ? 'sticky' : this.config.balance);
    const first = ordered.find((backend) => backend.state === 'up') ?? ordered[0];
    if (first) first.stats.picks++;
    const up = ordered.filter((backend) => backend.state === 'up');
    return (up.length > 0 ? up : ordered).slice(0, 1 + this.config.retries);
  }

  /** Starts the health checks. */
  start(): void {
    this.#health?.start();
  }

  /** Real traffic to `backend` failed: a connect refused or timed out, a 5xx to an upgrade. */
  failed(backend: Backend): void {
    backend.stats.failures++;
    backend.stats.lastFailureAt = Date.now();
    this.#health?.failure(backend);
  }

  /** Real traffic to `backend` got an answer. */
  succeeded(backend: Backend): void {
    this.#health?.success(backend);
  }

  /** Whether any backend takes new connections. */
  get available(): boolean {
    return this.backends.some((backend) => backend.state === 'up');
  }

  /** Stops the health checks and closes the idle keep-alive sockets held for plain HTTP. */
  close(): void {
    this.#health?.stop();
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
  }
}
