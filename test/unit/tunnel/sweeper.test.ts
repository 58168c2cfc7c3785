/**
 * The sweeper ticks on its clock, hands each member the clock's time, lets members leave while
 * they are swept, and stops; with a fake clock, time moves only when the test moves it.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type Sweepable, Sweeper } from '../../../src/tunnel/sweeper.ts';
import { FakeClock } from '../../helpers/fake-clock.ts';

test('members are swept at every tick with the clock time, and may leave during a sweep', () => {
  const clock = new FakeClock();
  const sweeper = new Sweeper(250, clock);
  const seen: [string, number][] = [];
  const leaver: Sweepable = {
    sweep: (now) => {
      seen.push(['leaver', now]);
      sweeper.delete(leaver);
    },
  };
  const stayer: Sweepable = { sweep: (now) => void seen.push(['stayer', now]) };
  sweeper.add(leaver);
  sweeper.add(stayer);
  sweeper.start();
  clock.advance(249);
  assert.deepEqual(seen, [], 'nothing before the first tick');
  clock.advance(251);
  assert.deepEqual(seen, [
    ['leaver', 250],
    ['stayer', 250],
    ['stayer', 500],
  ]);
  sweeper.stop();
  clock.advance(1_000);
  assert.equal(seen.length, 3, 'no tick after stop');
  assert.equal(sweeper.now(), 1_500, 'members read the same clock');
});
