/**
 * The small parts a reload leans on: which peers may ask the admin server for one, the sweeper
 * ticking faster when a configuration needs it, admission taking new caps and rates while what
 * is open stays counted, and a burst of reload requests folded into one.
 */
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { describe, it } from 'node:test';
import { isLoopback } from '../../../src/admin/admin-server.ts';
import type { AdmissionSettings } from '../../../src/config/admission-schema.ts';
import { type ReloadOutcome, serialReloads } from '../../../src/lifecycle.ts';
import { MemoryLimits } from '../../../src/limits/memory-store.ts';
import { Sweeper } from '../../../src/tunnel/sweeper.ts';
import type { UpgradeContext } from '../../../src/upgrade/context.ts';
import { Admission } from '../../../src/upgrade/stages/admission.ts';
import { FakeClock } from '../../helpers/fake-clock.ts';

describe('isLoopback', () => {
  it('accepts this machine only', () => {
    for (const address of ['127.0.0.1', '127.0.0.78', '::1', '::ffff:127.0.0.1']) {
      assert.equal(isLoopback(address), true, address);
    }
    for (const address of ['10.0.0.1', '::ffff:10.0.0.1', '192.168.1.127', '::2', '1270::1', undefined]) {
      assert.equal(isLoopback(address), false, String(address));
    }
  });
});

describe('Sweeper.retune', () => {
  it('ticks at the new interval from then on', () => {
    const clock = new FakeClock();
    const sweeper = new Sweeper(1_000, clock);
    const ticks: number[] = [];
    sweeper.add({ sweep: (now) => ticks.push(now) });
    sweeper.start();
    clock.advance(1_000);
    sweeper.retune(100);
    clock.advance(300);
    assert.deepEqual(ticks, [1_000, 1_100, 1_200, 1_300]);
    assert.equal(sweeper.intervalMs, 100);
    sweeper.stop();
  });
});

function settings(
  perClientMax: number | 'off',
  rate: AdmissionSettings['perClient']['handshakeRate'],
): AdmissionSettings {
  return {
    maxConnections: 'off',
    maxTrackedClients: 100,
    perClient: { maxConnections: perClientMax, handshakeRate: rate },
  } as AdmissionSettings;
}

function upgradeFrom(address: string): { ctx: UpgradeContext; close: () => void } {
  const socket = new EventEmitter() as EventEmitter & { closed: boolean };
  socket.closed = false;
  const ctx = {
    socket: socket as unknown as Socket,
    forwarded: { clientAddress: address },
  } as unknown as UpgradeContext;
  return { ctx, close: () => socket.emit('close') };
}

describe('Admission.reconfigure', () => {
  it('holds open connections to a lowered cap and gives a changed rate a full bucket', () => {
    const clock = new FakeClock();
    const admission = new Admission(settings(3, 'off'), new MemoryLimits(settings(3, 'off'), clock));
    const open = [1, 2, 3].map(() => upgradeFrom('192.0.2.1'));
    for (const { ctx } of open) assert.equal(admission.stage.run(ctx), undefined);
    admission.reconfigure(settings(2, 'off'));
    assert.equal(
      (admission.stage.run(upgradeFrom('192.0.2.1').ctx) as { code: string }).code,
      'CLIENT_CONNECTIONS_EXCEEDED',
    );
    open[0]?.close();
    open[1]?.close();
    assert.equal(admission.stage.run(upgradeFrom('192.0.2.1').ctx), undefined, 'under the new cap again');
    const rate = { perSecond: 1, burst: 1 };
    admission.reconfigure(settings('off', rate));
    assert.equal(admission.stage.run(upgradeFrom('192.0.2.1').ctx), undefined, 'the new bucket is full');
    assert.equal(
      (admission.stage.run(upgradeFrom('192.0.2.1').ctx) as { code: string }).code,
      'HANDSHAKE_RATE_LIMITED',
    );
  });
});

describe('serialReloads', () => {
  it('runs one reload at a time and folds a burst into one more, with the last loader', async () => {
    const ran: string[] = [];
    let release: (() => void) | undefined;
    const reload = serialReloads(async (load: string): Promise<ReloadOutcome> => {
      ran.push(load);
      if (ran.length === 1) await new Promise<void>((resolve) => (release = resolve));
      return { result: 'ok', hash: load, at: '' };
    });
    const first = reload('a');
    await new Promise((resolve) => setImmediate(resolve));
    const burst = ['b', 'c', 'd', 'e'].map((load) => reload(load));
    release?.();
    assert.equal((await first).hash, 'a');
    const outcomes = await Promise.all(burst);
    assert.deepEqual(ran, ['a', 'e'], 'one reload for the whole burst, with the last loader');
    assert.ok(outcomes.every((outcome) => outcome.hash === 'e'));
    assert.equal((await reload('f')).hash, 'f', 'a request after the burst runs on its own');
    assert.deepEqual(ran, ['a', 'e', 'f']);
  });
});
