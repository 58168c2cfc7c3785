/**
 * One coarse timer per gateway for the time-based checks of its tunnels (today: a write that does
 * not drain), so that thousands of tunnels cost one timer instead of one each, and joining or
 * leaving is a set operation cheap enough for every pause and drain. A tunnel is a member while
 * it has something to check; each tick hands every member the time of the gateway's clock.
 */

export interface Sweepable {
  /** Called on every tick with the clock's time in milliseconds. Must not throw. */
  sweep(now: number): void;
}

export class Sweeper {
  readonly intervalMs: number;
  /** Monotonic milliseconds; the same clock members use to stamp what they measure. */
  readonly now: () => number;
  readonly #members = new Set<Sweepable>();
  #timer: NodeJS.Timeout | undefined;

  constructor(intervalMs: number, now: () => number) {
    this.intervalMs = intervalMs;
    this.now = now;
  }

  /** Starts ticking (unref'd: it never keeps the process alive). */
  start(): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => this.#tick(), this.intervalMs);
    this.#timer.unref();
  }

  add(member: Sweepable): void {
    this.#members.add(member);
  }

  delete(member: Sweepable): void {
    this.#members.delete(member);
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  #tick(): void {
    const now = this.now();
    // A snapshot: members leave (or end) while they are swept.
    for (const member of [...this.#members]) member.sweep(now);
  }
}
