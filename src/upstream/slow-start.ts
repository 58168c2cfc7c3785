/**
 * Slow start: a backend that joins a running pool, or comes back up, gets a growing share of new
 * connections over the warm-up window, its weight rising linearly from a tenth of its configured
 * weight to all of it. Weights are brought up to date when a choice is made (no timer), and the
 * balancers read them on every choice.
 */
import type { Clock } from '../clock.ts';
import type { Backend } from './backend.ts';

/** The share of its weight a backend has at the start of its warm-up. */
const FIRST_SHARE = 0.1;

export class SlowStart {
  readonly #windowMs: number;
  readonly #clock: Clock;
  /** Backends warming up, with when they started. */
  readonly #warming = new Map<Backend, number>();

  constructor(windowMs: number, clock: Clock) {
    this.#windowMs = windowMs;
    this.#clock = clock;
  }

  /** Starts (or restarts) `backend`'s warm-up. */
  begin(backend: Backend): void {
    this.#warming.set(backend, this.#clock.now());
    backend.weight = backend.configuredWeight * FIRST_SHARE;
  }

  /** Brings the weights of the backends warming up to where they are now. */
  update(): void {
    if (this.#warming.size === 0) return;
    const now = this.#clock.now();
    for (const [backend, since] of this.#warming) {
      const progress = (now - since) / this.#windowMs;
      if (progress >= 1) {
        backend.weight = backend.configuredWeight;
        this.#warming.delete(backend);
      } else {
        backend.weight = backend.configuredWeight * (FIRST_SHARE + (1 - FIRST_SHARE) * progress);
      }
    }
  }

  /** Ends `backend`'s warm-up where it is (it left the pool). */
  forget(backend: Backend): void {
    this.#warming.delete(backend);
  }
}
