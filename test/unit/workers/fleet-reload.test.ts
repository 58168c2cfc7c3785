/**
 * The fleet's verdict on a reload: in force only when every worker took it; otherwise each
 * worker that may hold the new configuration is put back on the previous one.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ReloadOutcome } from '../../../src/lifecycle.ts';
import { RestartBackoff } from '../../../src/workers/backoff.ts';
import { fleetVerdict } from '../../../src/workers/fleet-reload.ts';

const workers = [{ index: 0 }, { index: 1 }, { index: 2 }];
const at = '2026-12-03T00:00:00.000Z';
const ok: ReloadOutcome = { result: 'ok', hash: 'new', at };
const failed: ReloadOutcome = { result: 'failed', hash: 'old', at, error: 'listener "x" cannot listen' };

describe('fleetVerdict', () => {
  it('is in force when every worker took it, with nothing to undo', () => {
    assert.deepEqual(fleetVerdict(workers, [ok, ok, { ...ok, result: 'unchanged' }]), {
      failures: [],
      rollBack: [],
    });
  });

  it('undoes it in those that took it when one refused', () => {
    const verdict = fleetVerdict(workers, [ok, failed, ok]);
    assert.deepEqual(verdict.failures, ['worker 1: listener "x" cannot listen']);
    assert.deepEqual(verdict.rollBack, [{ index: 0 }, { index: 2 }]);
  });

  it('undoes it too in a worker that did not answer in time (it may still take it)', () => {
    const verdict = fleetVerdict(workers, [ok, undefined, failed]);
    assert.deepEqual(verdict.failures, [
      'worker 1: no answer in time',
      'worker 2: listener "x" cannot listen',
    ]);
    assert.deepEqual(verdict.rollBack, [{ index: 0 }, { index: 1 }]);
  });
});

describe('RestartBackoff', () => {
  it('doubles after short lives up to 10 s, and starts again after a long one', () => {
    const backoff = new RestartBackoff();
    const waits = [1, 2, 3, 4, 5, 6, 7, 8].map(() => backoff.delay(50));
    assert.deepEqual(waits, [100, 200, 400, 800, 1_600, 3_200, 6_400, 10_000]);
    assert.equal(backoff.delay(10), 10_000);
    assert.equal(backoff.delay(120_000), 100, 'a worker that ran for minutes restarts at once');
  });
});
