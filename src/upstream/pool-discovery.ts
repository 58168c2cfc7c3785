/**
 * A pool's discovered entries kept in step with DNS: each set of addresses found becomes the
 * entry's members (a new address joins the pool, one already in it by another entry is left to
 * that entry), and an address that is no longer found leaves the pool and is drained
 * (backend-drain.ts). One that comes back before its drain is over returns as it was, tunnels,
 * counts and all.
 */
import type { Clock } from '../clock.ts';
import type { BackendEntry } from '../config/backend-schema.ts';
import type { Logger } from '../observability/logger.ts';
import { type Backend, createBackend, type FoundAddress } from './backend.ts';
import { BackendDrain, type BackendTunnels } from './backend-drain.ts';
import { Discovery, type DiscoverySettings, type Resolver } from './discovery.ts';

/** What discovery changes of a pool. */
export interface Membership {
  readonly name: string;
  member(id: string): Backend | undefined;
  add(backend: Backend): void;
  /** Takes `backend` out of the balancers (it is draining from now on). */
  remove(backend: Backend): void;
  /** A removed backend has no tunnel left. */
  left(backend: Backend): void;
}

/** What a pool's discovery reports, for the metrics. */
export interface DiscoveryEvents {
  /** A lookup of the entry labelled `label` ended: found addresses, or failed. */
  readonly looked: (label: string, ok: boolean) => void;
  /** The members from the entry labelled `label` changed. */
  readonly membersChanged: (label: string) => void;
}

export interface PoolDiscoveryDeps {
  readonly resolver: Resolver;
  readonly clock: Clock;
  readonly log: Logger;
  readonly tunnels: BackendTunnels;
  readonly events: DiscoveryEvents;
}

export class PoolDiscovery {
  readonly #pool: Membership;
  readonly #drainTimeout: number;
  readonly #deps: PoolDiscoveryDeps;
  readonly #discovery: Discovery;
  readonly #drain: BackendDrain;
  /** Each discovered entry's members, by identity. */
  readonly #members = new Map<BackendEntry, Map<string, Backend>>();
  /** Backends that left and are draining, by identity. */
  readonly #leaving = new Map<string, Backend>();

  /**
   * `entries` with the members each starts with (those a reloaded pool carries over from the one
   * it replaces: the first lookup keeps, adds or drains them like any other).
   */
  constructor(
    pool: Membership,
    entries: readonly { readonly entry: BackendEntry; readonly members: readonly Backend[] }[],
    settings: DiscoverySettings & { readonly drainTimeout: number },
    deps: PoolDiscoveryDeps,
  ) {
    this.#pool = pool;
    this.#drainTimeout = settings.drainTimeout;
    this.#deps = deps;
    for (const { entry, members } of entries) {
      this.#members.set(entry, new Map(members.map((backend) => [backend.id, backend])));
    }
    this.#drain = new BackendDrain(deps.tunnels, deps.clock);
    this.#discovery = new Discovery(
      entries.map(({ entry }) => entry),
      settings,
      {
        resolver: deps.resolver,
        clock: deps.clock,
        events: {
          found: (entry, addresses) => this.#found(entry, addresses),
          failed: (entry, reason) => this.#failed(entry, reason),
        },
      },
    );
  }

  /** Starts the lookups; resolves once each entry's first one has ended. */
  start(): Promise<void> {
    return this.#discovery.start();
  }

  stop(): void {
    this.#discovery.stop();
    this.#drain.stop();
  }

  /** Stops the lookups; the drains under way go on to their end (the pool was replaced by a reload). */
  stopLookups(): void {
    this.#discovery.stop();
  }

  #found(entry: BackendEntry, addresses: readonly FoundAddress[]): void {
    const members = this.#members.get(entry);
    if (members === undefined) return;
    const label = new URL(entry.url).origin;
    this.#deps.events.looked(label, true);
    const next = new Map<string, Backend>();
    const joined: string[] = [];
    for (const address of addresses) {
      const fresh = createBackend(this.#pool.name, entry, address);
      const kept = members.get(fresh.id);
      if (kept) next.set(kept.id, kept);
      else if (this.#pool.member(fresh.id) === undefined) {
        const returning = this.#leaving.get(fresh.id);
        const backend = returning ?? fresh;
        if (returning) {
          this.#leaving.delete(returning.id);
          this.#drain.cancel(returning);
        }
        this.#pool.add(backend);
        next.set(backend.id, backend);
        joined.push(backend.id);
      }
    }
    const gone = [...members.values()].filter((backend) => !next.has(backend.id));
    for (const backend of gone) this.#leave(backend);
    this.#members.set(entry, next);
    if (joined.length === 0 && gone.length === 0) return;
    this.#deps.log.info(
      { pool: this.#pool.name, backend: label, joined, left: gone.map((backend) => backend.id) },
      'discovered backends changed',
    );
    this.#deps.events.membersChanged(label);
  }

  #leave(backend: Backend): void {
    this.#pool.remove(backend);
    this.#leaving.set(backend.id, backend);
    this.#drain.start(backend, this.#drainTimeout, () => {
      this.#leaving.delete(backend.id);
      this.#pool.left(backend);
    });
  }

  #failed(entry: BackendEntry, reason: string): void {
    const label = new URL(entry.url).origin;
    this.#deps.events.looked(label, false);
    this.#deps.log.warn(
      { pool: this.#pool.name, backend: label, reason, kept: this.#members.get(entry)?.size ?? 0 },
      'discovery lookup failed; the last set found stays',
    );
  }
}
