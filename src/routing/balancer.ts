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
  /**
   * Backends to try for one new connection, best first; every backend appears at most once.
   * `usable` says which backends may be chosen now (the others come last): a balancer that keeps
   * shares spreads them over the usable ones only, so that no one inherits a down backend's turns.
   */
  candidates(key: string | undefined, usable?: (backend: T) => boolean): T[];
}

function everyBackend(): boolean {
  return true;
}

/** Smooth weighted round-robin over a fixed set of backends. */
export class RoundRobinBalancer<T extends Weighted> implements Balancer<T> {
  readonly #backends: readonly T[];
  readonly #current: number[];

  constructor(backends: readonly T[]) {
    if (backends.length === 0) throw new RangeError('a balancer needs at least one backend');
    this.#backends = backends;
    this.#current = backends.map(() => 0);
  }

  candidates(_key?: string, usable: (backend: T) => boolean = everyBackend): T[] {
    const all = this.#backends;
    // One backend: its turn comes every time (the share arithmetic below would say the same).
    if (all.length === 1) return [all[0] as T];
    let eligible = all.map((backend) => usable(backend));
    if (!eligible.includes(true)) eligible = all.map(() => true);
    let total = 0;
    let chosen = -1;
    for (let i = 0; i < all.length; i++) {
      if (!eligible[i]) continue;
      const weight = all[i]?.weight ?? 0;
      total += weight;
      const next = (this.#current[i] ?? 0) + weight;
      this.#current[i] = next;
      if (chosen === -1 || next > (this.#current[chosen] ?? 0)) chosen = i;
    }
    this.#current[chosen] = (this.#current[chosen] ?? 0) - total;
    const ordered: T[] = [];
    const rest: T[] = [];
    for (let offset = 0; offset < all.length; offset++) {
      const index = (chosen + offset) % all.length;
      const backend = all[index];
      if (backend) (eligible[index] ? ordered : rest).push(backend);
    }
    for (const backend of rest) ordered.push(backend);
    return ordered;
  }
}
