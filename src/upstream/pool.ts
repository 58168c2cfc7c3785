/**
 * The runtime side of a configured pool: its backends with their connection details, the balancers
 * that order them for each new connection, and the keep-alive agents used for plain HTTP. Its
 * membership can change while it runs (`add`, `remove`): the balancers are rebuilt over the
 * backends that take new connections, and a removed backend leaves the balancers at once while the
 * status page and the health checks stop tracking it. A pool owns no sockets beyond its agents.
 */
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { type Clock, SYSTEM_CLOCK } from '../clock.ts';
import type { BackendEntry } from '../config/backend-schema.ts';
import type { StickySource } from '../config/balance-schema.ts';
import type { PoolConfig } from '../config/schema.ts';
import type { Logger } from '../observability/logger.ts';
import { AffinityCookie } from '../routing/affinity-cookie.ts';
import { type Balancer, RoundRobinBalancer } from '../routing/balancer.ts';
import { LeastConnectionsBalancer } from '../routing/least-connections.ts';
import { RendezvousBalancer } from '../routing/rendezvous.ts';
import { type Backend, type BackendTls, createBackend } from './backend.ts';
import { PoolDiscovery, type PoolDiscoveryDeps } from './pool-discovery.ts';
import { type HealthEvents, PoolHealth } from './pool-health.ts';
import { SlowStart } from './slow-start.ts';

export type { Backend, BackendState, BackendTls } from './backend.ts';

/** What chose a connection's backend: consistent hashing on its sticky key, or the pool's balance. */
export type PickAlgorithm = 'sticky' | PoolConfig['balance'];

/** What a pool is built with beside its configuration. */
export interface PoolDeps {
  /** Counts each choice by the algorithm that made it (the picks metric). */
  readonly onPick?: (algorithm: PickAlgorithm) => void;
  /** Time for the warm-up of `slowStart` (default: the system clock). */
  readonly clock?: Clock;
  /** Runs the pool's health checks with this clock, reporting to these events. */
  readonly health?: { clock: Clock; events: HealthEvents; log: Logger };
  /** Looks up the entries listed with `discover` and drains the backends that leave (without: they stay empty). */
  readonly discovery?: PoolDiscoveryDeps;
  /**
   * The pool of the same name in the configuration this one replaces: its members at addresses
   * this one still lists (or discovers under the same entry) are carried over, the same objects
   * with their tunnels, counts and health state, so a reload drains only what it removes.
   */
  readonly previous?: Pool;
  /** A backend at this address that a reload took out and that is still draining: it comes back. */
  readonly reclaim?: (id: string) => Backend | undefined;
}

/** No balancer: a pool whose backends are all still to be found. */
const NONE: Balancer<Backend> = { candidates: () => [] };

function isUp(backend: Backend): boolean {
  return backend.state === 'up';
}

function affinityCookie(name: string, config: PoolConfig, sources: readonly StickySource[]) {
  const cookie = config.sticky?.cookie;
  if (cookie === undefined || !sources.includes('affinityCookie')) return undefined;
  return new AffinityCookie(
    {
      name: cookie.name,
      maxAgeSeconds: cookie.maxAge === 'off' ? undefined : Math.ceil(cookie.maxAge / 1000),
      sameSite: cookie.sameSite,
      path: cookie.path,
      secret: cookie.secretEnv ?? cookie.secretFile,
    },
    name,
  );
}

export class Pool {
  readonly name: string;
  readonly config: PoolConfig;
  readonly tls: BackendTls;
  /** Where a connection's sticky key comes from; empty when the pool is not sticky. */
  readonly stickySources: readonly StickySource[];
  /** The gateway's affinity cookie, when the sources list it. */
  readonly affinityCookie: AffinityCookie | undefined;
  readonly httpAgent: HttpAgent;
  readonly httpsAgent: HttpsAgent;

  /** The backends that may take new connections (up or down), in the order they joined. */
  #members: Backend[] = [];
  /** Backends removed from the pool whose tunnels are still open. */
  readonly #leaving = new Set<Backend>();
  /** For connections without a sticky key. */
  #balancer: Balancer<Backend> = NONE;
  /** Consistent hashing for connections with one, when the pool is sticky. */
  #hashing: Balancer<Backend> | undefined;
  readonly #onPick: (algorithm: PickAlgorithm) => void;
  /** The health checks, when the gateway runs them (a pool built without `deps.health` has none). */
  readonly #health: PoolHealth | undefined;
  readonly #discovery: PoolDiscovery | undefined;
  /** The warm-up of backends that join or come back, when the pool has one. */
  readonly #slowStart: SlowStart | undefined;
  /** What becomes of the backends carried over once the reload is in force. */
  readonly #onTakeOver: (() => void)[] = [];
  #started = false;

  constructor(name: string, config: PoolConfig, deps: PoolDeps = {}) {
    this.#onPick = deps.onPick ?? (() => {});
    this.name = name;
    this.config = config;
    this.tls = {
      ca: config.tls.ca?.pem,
      servername: config.tls.serverName,
      rejectUnauthorized: config.tls.verify,
    };
    this.#slowStart =
      config.slowStart === 'off' ? undefined : new SlowStart(config.slowStart, deps.clock ?? SYSTEM_CLOCK);
    const health = deps.health;
    this.#health =
      health === undefined
        ? undefined
        : new PoolHealth(config.health, this.tls, {
            ...health,
            events: {
              ...health.events,
              changed: (backend, up, why) => {
                if (up) this.#slowStart?.begin(backend);
                health.events.changed(backend, up, why);
              },
            },
          });
    this.stickySources = config.sticky?.from ?? [];
    this.affinityCookie = affinityCookie(name, config, this.stickySources);
    this.httpAgent = new HttpAgent({ keepAlive: true, maxFreeSockets: 64 });
    this.httpsAgent = new HttpsAgent({
      keepAlive: true,
      maxFreeSockets: 64,
      ...(this.tls.ca ? { ca: this.tls.ca } : {}),
      ...(this.tls.servername ? { servername: this.tls.servername } : {}),
      rejectUnauthorized: this.tls.rejectUnauthorized,
    });
    const previous = deps.previous;
    const carried = new Map<BackendEntry, Backend[]>();
    for (const entry of config.backends) {
      const label = new URL(entry.url).origin;
      const fromPrevious =
        previous?.members.filter(
          (backend) => backend.label === label && (entry.discover !== undefined || backend.id === label),
        ) ?? [];
      const returning =
        entry.discover === undefined && fromPrevious.length === 0 ? deps.reclaim?.(label) : undefined;
      if (returning !== undefined) fromPrevious.push(returning);
      for (const backend of fromPrevious) this.#carry(backend, entry.weight);
      carried.set(entry, fromPrevious);
      if (entry.discover === undefined && fromPrevious.length === 0) this.add(createBackend(name, entry));
    }
    const discovered = config.backends.filter((entry) => entry.discover !== undefined);
    this.#discovery =
      deps.discovery === undefined || discovered.length === 0
        ? undefined
        : new PoolDiscovery(
            this,
            discovered.map((entry) => ({ entry, members: carried.get(entry) ?? [] })),
            { ...config.discovery, drainTimeout: config.drainTimeout },
            deps.discovery,
          );
  }

  /**
   * Takes over a member of the pool this one replaces. The backend is shared with the pool in
   * force until the reload is: what this configuration changes of it (its weight; its state, when
   * this pool has no checks to bring back one the previous pool took out) waits for `takeOver`.
   */
  #carry(backend: Backend, weight: number): void {
    const checked = this.config.health.active !== undefined;
    this.#onTakeOver.push(() => {
      backend.configuredWeight = weight;
      backend.weight = weight;
      if (!checked && backend.state === 'down') backend.state = 'up';
    });
    this.add(backend);
  }

  /**
   * The reload that built this pool is in force: the backends it carried over become its own.
   * Its checks and lookups start after this (`start`), so nothing it does touches a backend the
   * pool in force still balances on while the reload might still be abandoned.
   */
  takeOver(): void {
    for (const apply of this.#onTakeOver.splice(0)) apply();
  }

  /** The backends that take new connections (up or down), in the order they joined. */
  get members(): readonly Backend[] {
    return this.#members;
  }

  /** Every backend the pool knows: its members, then those leaving it. */
  get backends(): readonly Backend[] {
    return [...this.#members, ...this.#leaving];
  }

  /** The member with identity `id`, if one is. */
  member(id: string): Backend | undefined {
    return this.#members.find((backend) => backend.id === id);
  }

  /** Makes `backend` a member: it takes new connections once its health allows. */
  add(backend: Backend): void {
    this.#leaving.delete(backend);
    if (this.#members.includes(backend)) return;
    if (backend.state === 'draining') backend.state = 'up';
    this.#members.push(backend);
    this.#health?.add(backend);
    // A backend joining a pool that already serves warms up; those of the configuration do not.
    if (this.#started) this.#slowStart?.begin(backend);
    this.#rebuild();
  }

  /**
   * Takes `backend` out of the balancers: it gets no new connection from now on. It is shown as
   * draining until `left` says its last tunnel is gone.
   */
  remove(backend: Backend): void {
    if (!this.#members.includes(backend)) return;
    this.#members = this.#members.filter((member) => member !== backend);
    this.#health?.remove(backend);
    this.#slowStart?.forget(backend);
    backend.state = 'draining';
    this.#leaving.add(backend);
    this.#rebuild();
  }

  /** A removed backend has no tunnel left: the pool forgets it. */
  left(backend: Backend): void {
    this.#leaving.delete(backend);
  }

  #rebuild(): void {
    const members = this.#members;
    if (members.length === 0) {
      this.#balancer = NONE;
      this.#hashing = this.config.sticky === undefined ? undefined : NONE;
      return;
    }
    this.#balancer =
      this.config.balance === 'least_connections'
        ? new LeastConnectionsBalancer(members)
        : new RoundRobinBalancer(members);
    const loadFactor = this.config.sticky?.loadFactor;
    this.#hashing =
      this.config.sticky === undefined
        ? undefined
        : new RendezvousBalancer(members, loadFactor === 'off' ? undefined : loadFactor);
  }

  /**
   * Backends to try for one new connection, best first, at most `1 + retries` of them: those that
   * are up, in the order of consistent hashing for a sticky `key`, else of the pool's `balance`;
   * when none is up, every member (a pool that may be wrong about all of its backends still tries
   * them rather than refuse everything). Empty when the pool has no member yet.
   */
  candidates(key: string | undefined): Backend[] {
    this.#slowStart?.update();
    const hashed = key !== undefined && this.#hashing !== undefined;
    const ordered = hashed ? (this.#hashing?.candidates(key) ?? []) : this.#balancer.candidates(key, isUp);
    if (ordered.length === 0) return [];
    this.#onPick(hashed ? 'sticky' : this.config.balance);
    const limit = 1 + this.config.retries;
    let chosen: Backend[] = [];
    for (const backend of ordered) {
      if (chosen.length === limit) break;
      if (isUp(backend)) chosen.push(backend);
    }
    if (chosen.length === 0) chosen = ordered.slice(0, limit);
    const first = chosen[0];
    if (first) first.stats.picks++;
    return chosen;
  }

  /** Starts the health checks and the lookups; resolves once the first lookups have ended. */
  async start(): Promise<void> {
    this.#health?.start();
    // What the first lookups find is the pool's starting set: it serves at full weight.
    await this.#discovery?.start();
    this.#started = true;
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

  /** How many members come from the configured entry `label`. */
  memberCount(label: string): number {
    return this.#members.filter((backend) => backend.label === label).length;
  }

  /** How many members from the configured entry `label` take new connections. */
  upCount(label: string): number {
    return this.#members.filter((backend) => backend.label === label && backend.state === 'up').length;
  }

  /** Whether any backend takes new connections. */
  get available(): boolean {
    return this.#members.some((backend) => backend.state === 'up');
  }

  /**
   * A reload replaced or removed this pool: its lookups and checks stop, and its keep-alive
   * connections close once their requests are over. The drains it started go on to their end.
   */
  retire(): void {
    this.#discovery?.stopLookups();
    this.#health?.stop();
    for (const agent of [this.httpAgent, this.httpsAgent]) {
      agent.keepSocketAlive = () => false;
      for (const sockets of Object.values(agent.freeSockets))
        for (const socket of sockets ?? []) socket.destroy();
    }
  }

  /** Stops the lookups, the drains and the health checks and closes the idle keep-alive sockets held for plain HTTP. */
  close(): void {
    this.#discovery?.stop();
    this.#health?.stop();
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
  }
}
