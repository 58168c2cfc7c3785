/**
 * A clock that moves only when the test says so: `advance(ms)` moves time forward and runs every
 * timer (repeating or one-shot) that falls due on the way, in order, so time-based behaviour (the sweeper's
 * send timeout, later idle and lifetime limits) is tested without waiting.
 */
import type { Clock } from '../../src/tunnel/sweeper.ts';

interface Repeating {
  /** 0 for a one-shot timer. */
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

  after(delayMs: number, fire: () => void): () => void {
    const timer: Repeating = { intervalMs: 0, next: this.#now + delayMs, tick: fire, stopped: false };
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
      if (due.intervalMs === 0) due.stopped = true;
      else due.next += due.intervalMs;
      due.tick();
    }
    this.#now = end;
  }
}
