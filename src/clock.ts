/**
 * Time as the gateway reads it: monotonic milliseconds and timers that never keep the process
 * alive. Injected everywhere time matters (the sweeper, rate limits, JWKS refreshes), so tests
 * move it by hand.
 */

/** Monotonic time and timers: the system's, or a test's fake. */
export interface Clock {
  /** Milliseconds from an arbitrary origin, never going back. */
  now(): number;
  /** Calls `tick` every `intervalMs` until the returned function is called (never keeps the process alive). */
  every(intervalMs: number, tick: () => void): () => void;
  /** Calls `fire` once after `delayMs` unless the returned function is called first (never keeps the process alive). */
  after(delayMs: number, fire: () => void): () => void;
}

/** The real clock: performance.now() and unref'd timers. */
export const SYSTEM_CLOCK: Clock = {
  now: () => performance.now(),
  every: (intervalMs, tick) => {
    const timer = setInterval(tick, intervalMs);
    timer.unref();
    return () => clearInterval(timer);
  },
  after: (delayMs, fire) => {
    const timer = setTimeout(fire, delayMs);
    timer.unref();
    return () => clearTimeout(timer);
  },
};
