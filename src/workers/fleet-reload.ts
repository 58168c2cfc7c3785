/**
 * What a reload of the fleet did, from each worker's outcome: it is in force only when every
 * worker has it. Otherwise the reload failed, and the workers that may hold the new configuration
 * (those that took it, and those that did not answer in time and may still take it: a gateway
 * applies reloads in order, so the previous text sent after reaches them after) must be put back.
 */
import type { ReloadOutcome } from '../lifecycle.ts';

export interface FleetVerdict<W> {
  /** One line per worker that did not take it: which, and why. */
  readonly failures: readonly string[];
  /** The workers to put back on the previous configuration when there are failures. */
  readonly rollBack: readonly W[];
}

export function fleetVerdict<W extends { readonly index: number }>(
  workers: readonly W[],
  outcomes: readonly (ReloadOutcome | undefined)[],
): FleetVerdict<W> {
  const failures: string[] = [];
  const rollBack: W[] = [];
  for (const [position, worker] of workers.entries()) {
    const outcome = outcomes[position];
    if (outcome?.result === 'ok' || outcome?.result === 'unchanged') {
      rollBack.push(worker);
      continue;
    }
    failures.push(`worker ${worker.index}: ${outcome?.error ?? 'no answer in time'}`);
    if (outcome === undefined) rollBack.push(worker);
  }
  return { failures, rollBack: failures.length > 0 ? rollBack : [] };
}
