/**
 * Least connections by the power of two random choices: two backends drawn at random (by weight),
 * the one with fewer open connections per unit of weight first. It spreads load almost as well as
 * scanning every backend, without a herd: replicas that do not share counts do not all pick the
 * same least-loaded backend at once. The fallbacks follow in order of load.
 */
import type { Balancer, Weighted } from './balancer.ts';

export interface Loaded extends Weighted {
  readonly activeTunnels: number;
}

export class LeastConnectionsBalancer<T extends Loaded> implements Balancer<T> {
  readonly #backends: readonly T[];
  readonly #totalWeight: number;
  readonly #random: () => number;

  constructor(backends: readonly T[], random: () => number = Math.random) {
    if (backends.length === 0) throw new RangeError('a balancer needs at least one backend');
    this.#backends = backends;
    this.#totalWeight = backends.reduce((sum, backend) => sum + backend.weight, 0);
    this.#random = random;
  }

  /** One backend drawn by weight, other than `not`. */
  #draw(not: T | undefined): T {
    const total = this.#totalWeight - (not?.weight ?? 0);
    let at = this.#random() * total;
    for (const backend of this.#backends) {
      if (backend === not) continue;
      at -= backend.weight;
      if (at < 0) return backend;
    }
    return this.#backends.find((backend) => backend !== not) as T;
  }

  candidates(): T[] {
    const load = (backend: T): number => backend.activeTunnels / backend.weight;
    const byLoad = [...this.#backends].sort((a, b) => load(a) - load(b));
    if (this.#backends.length === 1) return byLoad;
    const one = this.#draw(undefined);
    const two = this.#draw(one);
    const chosen = load(two) < load(one) ? two : one;
    return [chosen, ...byLoad.filter((backend) => backend !== chosen)];
  }
}
