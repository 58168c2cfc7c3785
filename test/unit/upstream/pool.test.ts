/**
 * A pool's candidates for a new connection: consistent hashing for a sticky key, the pool's
 * balance algorithm without one, only backends that are up while any is, at most 1 + retries;
 * and the registry finds the tunnels of one backend (for draining it).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConnectionRegistry } from '../../../src/listener/registry.ts';
import { createLogger } from '../../../src/observability/logger.ts';
import { Pool } from '../../../src/upstream/pool.ts';
import { FakeClock } from '../../helpers/fake-clock.ts';
import { testConfig } from '../../helpers/gateway.ts';

function pool(extra: Record<string, unknown> = {}): Pool {
  const urls = ['http://127.0.0.1:9001', 'http://127.0.0.1:9002', 'http://127.0.0.1:9003'];
  const config = testConfig({
    routes: { r: { pool: 'p' } },
    pools: { p: { backends: urls, retries: 2, ...extra } },
  });
  const entry = config.pools.p;
  assert.ok(entry);
  return new Pool('p', entry);
}

test('a sticky key always gets the same first choice; a backend down is skipped, and chosen again once up', () => {
  const sticky = pool({ sticky: { from: ['clientAddress'] } });
  const first = sticky.candidates('0:198.51.100.7')[0];
  assert.ok(first);
  for (let i = 0; i < 5; i++) assert.equal(sticky.candidates('0:198.51.100.7')[0], first);
  first.state = 'down';
  const moved = sticky.candidates('0:198.51.100.7');
  assert.equal(moved.length, 2);
  assert.ok(!moved.includes(first), 'a backend that is down is not a candidate');
  first.state = 'up';
  assert.equal(sticky.candidates('0:198.51.100.7')[0], first, 'back on it once it is up');
  for (const backend of sticky.backends) backend.state = 'down';
  assert.equal(sticky.candidates('0:198.51.100.7').length, 3, 'none up: every backend is still tried');
});

test('without a key, the balance algorithm; at most 1 + retries candidates', () => {
  const plain = pool({ retries: 1 });
  const firsts = Array.from({ length: 6 }, () => plain.candidates(undefined)[0]?.port);
  assert.deepEqual(firsts, [9001, 9002, 9003, 9001, 9002, 9003], 'round robin');
  assert.equal(plain.candidates(undefined).length, 2);
  const least = pool({ balance: 'least_connections' });
  const [a, b, c] = least.backends;
  assert.ok(a && b && c);
  a.activeTunnels = 9;
  b.activeTunnels = 5;
  c.activeTunnels = 0;
  // Two distinct backends are drawn and the less loaded goes first: the most loaded never does.
  for (let i = 0; i < 50; i++) assert.notEqual(least.candidates(undefined)[0], a);
  assert.equal(least.candidates(undefined).at(-1)?.activeTunnels, 9, 'the most loaded come last');
});

test('the registry lists the live tunnels of one backend', () => {
  const registry = new ConnectionRegistry();
  const one = {};
  const two = {};
  const tunnel = (id: string) => ({ id, close: () => {}, destroy: () => {} });
  const [t1, t2, t3] = [tunnel('t1'), tunnel('t2'), tunnel('t3')];
  registry.addTunnel(t1, one);
  registry.addTunnel(t2, one);
  registry.addTunnel(t3, two);
  assert.deepEqual(
    registry.tunnelsOf(one).map((entry) => entry.id),
    ['t1', 't2'],
  );
  registry.removeTunnel(t1);
  registry.removeTunnel(t3);
  assert.deepEqual(
    registry.tunnelsOf(one).map((entry) => entry.id),
    ['t2'],
  );
  assert.deepEqual(registry.tunnelsOf(two), []);
});

test('the registry says when a backend has no tunnel left', async () => {
  const registry = new ConnectionRegistry();
  const one = {};
  let idle = false;
  await registry.whenIdle(one); // none now: at once
  const t1 = { id: 't1', close: () => {}, destroy: () => {} };
  registry.addTunnel(t1, one);
  const waited = registry.whenIdle(one).then(() => {
    idle = true;
  });
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(idle, false);
  registry.removeTunnel(t1);
  await waited;
  assert.equal(idle, true);
});

test('slow start: a backend back from ejection warms up from a tenth of its weight', () => {
  const clock = new FakeClock();
  const config = testConfig({
    routes: { r: { pool: 'p' } },
    pools: {
      p: {
        backends: ['http://127.0.0.1:9001', 'http://127.0.0.1:9002', 'http://127.0.0.1:9003'],
        slowStart: '10s',
        health: { passive: { failures: 1, ejectFor: '5s', maxEjectedShare: 0.5 } },
      },
    },
  });
  const entry = config.pools.p;
  assert.ok(entry);
  const silent = { changed: () => {}, ejected: () => {}, checked: () => {} };
  const log = createLogger({ level: 'silent', format: 'json' });
  const warming = new Pool('p', entry, { clock, health: { clock, log, events: silent } });
  const [first] = warming.backends;
  assert.ok(first);
  warming.failed(first);
  assert.equal(first.state, 'down');
  clock.advance(5_000);
  assert.equal(first.state, 'up');
  warming.candidates(undefined);
  assert.equal(first.weight, 0.1);
  clock.advance(5_000);
  warming.candidates(undefined);
  assert.ok(Math.abs(first.weight - 0.55) < 1e-9, `half way: ${first.weight}`);
  clock.advance(5_000);
  warming.candidates(undefined);
  assert.equal(first.weight, 1);
});
