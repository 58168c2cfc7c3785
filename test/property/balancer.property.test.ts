/**
 * Balancing properties (fast-check): consistent hashing on sticky keys (weighted rendezvous)
 * moves only the removed backend's keys, agrees between two independent instances (gateway
 * replicas share no state), spreads keys by weight within a tolerance, and with a load factor
 * never lets a backend go over its bound; least connections (two random choices) always picks
 * the less loaded of its two draws. Each property is time-boxed.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { LeastConnectionsBalancer } from '../../src/routing/least-connections.ts';
import { RendezvousBalancer } from '../../src/routing/rendezvous.ts';

const TIME_LIMIT_MS = 5_000;
const params = (numRuns: number) => ({ numRuns, plugins: [fc.interruptAfterTimeLimit(TIME_LIMIT_MS)] });

interface TestBackend {
  readonly id: string;
  readonly weight: number;
  activeTunnels: number;
  activeRequests: number;
}

const backendSet = fc
  .uniqueArray(fc.integer({ min: 1, max: 60_000 }), { minLength: 2, maxLength: 12 })
  .chain((ports) =>
    fc.tuple(
      fc.constant(ports),
      fc.array(fc.integer({ min: 1, max: 5 }), { minLength: ports.length, maxLength: ports.length }),
    ),
  )
  .map(([ports, weights]) =>
    ports.map((port, i) => ({
      id: `http://10.0.0.1:${port}`,
      weight: weights[i] ?? 1,
      activeTunnels: 0,
      activeRequests: 0,
    })),
  );

const keys = fc.uniqueArray(fc.string({ minLength: 1, maxLength: 24 }), { minLength: 20, maxLength: 200 });

describe('weighted rendezvous hashing', () => {
  it('removing a backend moves only the keys it held', () => {
    fc.assert(
      fc.property(backendSet, keys, fc.nat(), (backends, sample, pick) => {
        const removed = backends[pick % backends.length] as TestBackend;
        const before = new RendezvousBalancer(backends, undefined);
        const after = new RendezvousBalancer(
          backends.filter((backend) => backend !== removed),
          undefined,
        );
        for (const key of sample) {
          const was = before.candidates(key)[0];
          const now = after.candidates(key)[0];
          if (was !== removed)
            assert.equal(now, was, `key ${JSON.stringify(key)} moved off a backend that stayed`);
          else assert.equal(now, before.candidates(key)[1], 'a moved key goes to its next choice');
        }
      }),
      params(200),
    );
  });

  it('two instances (two gateway replicas) agree on every key, whatever the backend order', () => {
    fc.assert(
      fc.property(backendSet, keys, (backends, sample) => {
        const one = new RendezvousBalancer(backends, undefined);
        const other = new RendezvousBalancer(
          [...backends].reverse().map((backend) => ({ ...backend })),
          undefined,
        );
        for (const key of sample) {
          assert.deepEqual(
            other.candidates(key).map((backend) => backend.id),
            one.candidates(key).map((backend) => backend.id),
          );
        }
      }),
      params(200),
    );
  });

  it('spreads keys by weight, within 5 points of each share over 20,000 keys', () => {
    fc.assert(
      fc.property(backendSet, (backends) => {
        const balancer = new RendezvousBalancer(backends, undefined);
        const counts = new Map<string, number>();
        const total = 20_000;
        for (let i = 0; i < total; i++) {
          const first = balancer.candidates(`session-${i}`)[0] as TestBackend;
          counts.set(first.id, (counts.get(first.id) ?? 0) + 1);
        }
        const weights = backends.reduce((sum, backend) => sum + backend.weight, 0);
        for (const backend of backends) {
          const share = (counts.get(backend.id) ?? 0) / total;
          const expected = backend.weight / weights;
          assert.ok(Math.abs(share - expected) < 0.05, `${backend.id}: ${share} for ${expected}`);
        }
      }),
      params(20),
    );
  });

  it('with a load factor, no backend goes over its bound, even when every key is the same', () => {
    fc.assert(
      fc.property(
        backendSet,
        fc.double({ min: 1.01, max: 3, noNaN: true }),
        fc.array(fc.constantFrom('hot', 'hot', 'hot', 'warm', 'cold'), { minLength: 50, maxLength: 300 }),
        (backends, factor, arrivals) => {
          const balancer = new RendezvousBalancer(backends, factor);
          const weights = backends.reduce((sum, backend) => sum + backend.weight, 0);
          let open = 0;
          for (const key of arrivals) {
            const chosen = balancer.candidates(key)[0] as TestBackend;
            const bound = Math.ceil((factor * (open + 1) * chosen.weight) / weights);
            assert.ok(
              chosen.activeTunnels < bound,
              `${chosen.id} holds ${chosen.activeTunnels}, bound ${bound}`,
            );
            chosen.activeTunnels++;
            open++;
          }
        },
      ),
      params(200),
    );
  });
});

describe('least connections (two random choices)', () => {
  it('never picks first a backend more loaded than every other, and lists every backend once', () => {
    fc.assert(
      fc.property(
        backendSet,
        fc.array(fc.nat({ max: 50 }), { minLength: 12, maxLength: 12 }),
        fc.array(fc.double({ min: 0, max: 0.999_999, noNaN: true }), { minLength: 2, maxLength: 2 }),
        (backends, loads, draws) => {
          backends.forEach((backend, i) => {
            backend.activeTunnels = loads[i] ?? 0;
          });
          let at = 0;
          const balancer = new LeastConnectionsBalancer(backends, () => draws[at++ % draws.length] ?? 0);
          const ordered = balancer.candidates();
          assert.equal(new Set(ordered).size, backends.length, 'every backend once');
          const load = (backend: TestBackend) => backend.activeTunnels / backend.weight;
          const first = ordered[0] as TestBackend;
          const others = backends.filter((backend) => backend !== first);
          // Two distinct backends are drawn and the less loaded wins: the most loaded one never does.
          assert.ok(
            others.some((backend) => load(backend) >= load(first)),
            'the first is not the most loaded',
          );
          const rest = ordered.slice(1);
          assert.ok(rest.every((backend, i) => i === 0 || load(rest[i - 1] as TestBackend) <= load(backend)));
        },
      ),
      params(300),
    );
  });
});
