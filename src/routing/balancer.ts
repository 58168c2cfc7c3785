/**
 * Chooses backends for new connections. `candidates(key)` yields an ordered list: the first
 * choice, then the fallbacks that a failed connect moves on to, so retries walk a stable order
 * without re-running the choice. `key` is the connection's sticky key when the pool has one (the
 * same for a session's long-polling requests and its WebSocket); a balancer that does not hash
 * ignores it. Smooth weighted round-robin gives each backend its weight's share, interleaved
 * rather than in bursts.
 */

/** What a balancer needs to know of a backend. */
export interface Weighted {
  readonly weight: number;
}

export interface Balancer<T extends Weighted> {
  /** Backends to try for one new connection, best first; every backend appears at most once. */
  candidates(key: string | undefined): T[];
}

/** Smooth weighted round-robin over a fixed set of backends. */
export class RoundRobinBalancer<T extends Weighted> implements Balancer<T> {
  readonly #backends: readonly T[];
  readonly #current: number[];
  readonly #totalWeight: number;

  constructor(backends: readonly T[]) {
    if (backends.length === 0) throw new RangeError('a balancer needs at least one backend');
    this.#backends = backends;
    this.#current = backends.map(() => 0);
    this.#totalWeight = backends.reduce((sum, backend) => sum + backend.weight, 0);
  }

  candidates(): T[] {
    let chosen = 0;
    for (let i = 0; i < this.#backends.length; i++) {
      const next = (this.#current[i] ?? 0) + (this.#backends[i]?.weight ?? 0);
      this.#current[i] = next;
      if (next > (this.#current[chosen] ?? 0)) chosen = i;
    }
    this.#current[chosen] = (this.#current[chosen] ?? 0) - this.#totalWeight;
    const ordered: T[] = [];
    for (let offset = 0; offset < this.#backends.length; offset++) {
      const backend = this.#backends[(chosen + offset) % this.#backends.length];
      if (backend) ordered.push(backend);
    }
    return ordered;
  }
}
