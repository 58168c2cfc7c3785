/**
 * A clock that moves only when the test says so: `advance(ms)` moves time forward and runs every
 * repeating timer that falls due on the way, in order, so time-based behaviour (the sweeper's
 * send timeout, later idle and lifetime limits) is tested without waiting.
 */
import type { Clock } from '../../src/tunnel/sweeper.ts';

interface Repeating {
  readonly intervalMs: number;
  next: number;
  readonly tick: () => void;
  stopped: boolean;
}

export class FakeClock implements Clock {
  #now = 0;
  readonly #timers: Repeating[] = [];

  now(): number {
    return this.#now;
  }

  every(intervalMs: number, tick: () => void): () => void {
    const timer: Repeating = { intervalMs, next: this.#now + intervalMs, tick, stopped: false };
    this.#timers.push(timer);
    return () => {
      timer.stopped = true;
    };
  }

  /** Moves time forward by `ms`, running each due tick at its own time. */
  advance(ms: number): void {
    const end = this.#now + ms;
    for (;;) {
      const due = this.#timers
        .filter((timer) => !timer.stopped && timer.next <= end)
        .sort((a, b) => a.next - b.next)[0];
      if (!due) break;
      this.#now = due.next;
      due.next += due.intervalMs;
      due.tick();
    }
    this.#now = end;
  }
}
