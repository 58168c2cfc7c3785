/**
 * Deadlines checked by when they fire: the effect of a configured timeout must come at about that
 * timeout, never before it (a timer armed too short, or an unrelated path ending things early) and
 * not far after it (a timer that never fires, leaving a later fallback to do its work). Times are
 * `performance.now()` readings, which no clock adjustment can move.
 */
import assert from 'node:assert/strict';

/** How much earlier than its nominal time a timer may be seen to fire (timer granularity). */
export const EARLY_TOLERANCE_MS = 50;

/** How much later than its nominal time an effect may come on a busy shared machine. */
export function lateToleranceMs(configuredMs: number): number {
  return Math.max(1_500, configuredMs);
}

export interface ElapsedOptions {
  /**
   * Extra lateness allowed on top of the usual tolerance, for a deadline that a periodic sweep
   * enforces (Node's `connectionsCheckingInterval` for request heads): the effect may wait for
   * the next sweep.
   */
  readonly sweepMs?: number;
}

/**
 * Asserts that the time from `startedAt` (a `performance.now()` reading taken when the timeout
 * started, or just before) to now is at least `configuredMs` less the timer tolerance and at most
 * `configuredMs` plus the lateness tolerance (and `sweepMs`). Returns the elapsed milliseconds.
 */
export function assertElapsedAbout(
  startedAt: number,
  configuredMs: number,
  what: string,
  options: ElapsedOptions = {},
): number {
  const elapsed = performance.now() - startedAt;
  const earliest = configuredMs - EARLY_TOLERANCE_MS;
  const latest = configuredMs + lateToleranceMs(configuredMs) + (options.sweepMs ?? 0);
  const shown = `${Math.round(elapsed)} ms`;
  assert.ok(
    elapsed >= earliest,
    `${what} after ${shown}: before the configured ${configuredMs} ms (earliest allowed ${earliest} ms)`,
  );
  assert.ok(
    elapsed <= latest,
    `${what} after ${shown}: far past the configured ${configuredMs} ms (latest allowed ${latest} ms)`,
  );
  return elapsed;
}
