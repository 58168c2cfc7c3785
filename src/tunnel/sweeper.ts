/**
 * One coarse timer per gateway for the time-based checks of its tunnels (a write that does not
 * drain, idle timeouts, keepalive pings and their answers, lifetimes), so that thousands of tunnels cost one timer instead of one each, and joining or
 * leaving is a set operation cheap enough for every pause and drain. A tunnel is a member while
 * it has something to check; each tick hands every member the time of the gateway's clock. The
 * clock is injected (`Clock`), so tests drive time by hand.
 */

import type { Clock } from '../clock.ts';
import { SYSTEM_CLOCK } from '../clock.ts';

export { type Clock, SYSTEM_CLOCK } from '../clock.ts';

export interface Sweepable {
  /** Called on every tick with the clock's time in milliseconds. Must not throw. */
  sweep(now: number): void;
}

export class Sweeper {
  #intervalMs: number;
  readonly #clock: Clock;
  readonly #members = new Set<Sweepable>();
  #stop: (() => void) | undefined;

  constructor(intervalMs: number, clock: Clock = SYSTEM_CLOCK) {
    this.#intervalMs = intervalMs;
    this.#clock = clock;
  }

  /** The clock's time: what members stamp what they measure with. */
  now(): number {
    return this.#clock.now();
  }

  get intervalMs(): number {
    return this.#intervalMs;
  }

  /** Starts ticking. */
  start(): void {
    this.#stop ??= this.#clock.every(this.#intervalMs, () => this.#tick());
  }

  /** Ticks every `intervalMs` from now on (a reloaded configuration with shorter deadlines). */
  retune(intervalMs: number): void {
    if (intervalMs === this.#intervalMs) return;
    this.#intervalMs = intervalMs;
    if (this.#stop === undefined) return;
    this.stop();
    this.start();
  }

  add(member: Sweepable): void {
    this.#members.add(member);
  }

  delete(member: Sweepable): void {
    this.#members.delete(member);
  }

  stop(): void {
    this.#stop?.();
    this.#stop = undefined;
  }

  #tick(): void {
    const now = this.#clock.now();
    // A snapshot: members leave (or end) while they are swept.
    for (const member of [...this.#members]) member.sweep(now);
  }
}
