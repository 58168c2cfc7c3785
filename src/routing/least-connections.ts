/**
 * Least connections by the power of two random choices: two backends drawn at random (by weight),
 * the one with fewer open connections (tunnels and plain requests in flight) per unit of weight first. It spreads load almost as well as
 * scanning every backend, without a herd: replicas that do not share counts do not all pick the
 * same least-loaded backend at once. The fallbacks follow in order of load.
 */
import type { Balancer, Weighted } from './balancer.ts';

export interface Loaded extends Weighted {
  readonly activeTunnels: number;
  /** Plain HTTP requests in flight (long-polls and streams hold a backend as tunnels do). */
  readonly activeRequests: number;
}

export class LeastConnectionsBalancer<T extends Loaded> implements Balancer<T> {
  readonly #backends: readonly T[];
  readonly #random: () => number;

  constructor(backends: readonly T[], random: () => number = Math.random) {
    if (backends.length === 0) throw new RangeError('a balancer needs at least one backend');
    this.#backends = backends;
    this.#random = random;
  }

  /** One of `from` drawn by weight, other than `not`. */
  #draw(from: readonly T[], not: T | undefined): T {
    const total = from.reduce((sum, backend) => sum + (backend === not ? 0 : backend.weight), 0);
    let at = this.#random() * total;
    for (const backend of from) {
      if (backend === not) continue;
      at -= backend.weight;
      if (at < 0) return backend;
    }
    return from.find((backend) => backend !== not) as T;
  }

  candidates(_key?: string, usable: (backend: T) => boolean = () => true): T[] {
    const load = (backend: T): number => (backend.activeTunnels + backend.activeRequests) / backend.weight;
    const up = this.#backends.filter(usable);
    const from = up.length > 0 ? up : this.#backends;
    const rest = this.#backends.filter((backend) => !from.includes(backend));
    const byLoad = [...from].sort((a, b) => load(a) - load(b));
    if (from.length === 1) return [...byLoad, ...rest];
    const one = this.#draw(from, undefined);
    const two = this.#draw(from, one);
    const chosen = load(two) < load(one) ? two : one;
    return [chosen, ...byLoad.filter((backend) => backend !== chosen), ...rest];
  }
}
