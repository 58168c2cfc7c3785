/**
 * What one DNS lookup of a discovered entry finds (A and AAAA on the URL's port, SRV targets of
 * the lowest priority on their ports, duplicates once, a stable order), and the lookup loop on a
 * fake clock: a lookup that hangs past the timeout fails and the next one still runs.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Discovery, lookUp, MAX_ADDRESSES, type Resolver } from '../../../src/upstream/discovery.ts';
import { FakeClock } from '../../helpers/fake-clock.ts';

const noData = (): Promise<never> => Promise.reject(Object.assign(new Error('no data'), { code: 'ENODATA' }));

function resolver(parts: Partial<Resolver>): Resolver {
  return { resolve4: noData, resolve6: noData, resolveSrv: noData, ...parts };
}

test('dns: A and AAAA addresses on the URL port (the scheme default without one), each once, sorted', async () => {
  const dns = resolver({
    resolve4: async () => ['10.0.0.9', '10.0.0.2', '10.0.0.9'],
    resolve6: async () => ['fd00::1'],
  });
  assert.deepEqual(await lookUp(dns, { url: 'http://chat.ns.svc:8080', weight: 1, discover: 'dns' }), [
    { address: '10.0.0.2', port: 8080 },
    { address: '10.0.0.9', port: 8080 },
    { address: 'fd00::1', port: 8080 },
  ]);
  const four = resolver({ resolve4: async () => ['10.0.0.2'] });
  assert.deepEqual(await lookUp(four, { url: 'https://chat.ns.svc', weight: 1, discover: 'dns' }), [
    { address: '10.0.0.2', port: 443 },
  ]);
});

test('dns: an error only when neither family answers', async () => {
  const down = resolver({
    resolve4: () => Promise.reject(Object.assign(new Error('servfail'), { code: 'ESERVFAIL' })),
  });
  await assert.rejects(lookUp(down, { url: 'http://chat.ns.svc:80', weight: 1, discover: 'dns' }), {
    code: 'ESERVFAIL',
  });
});

test('srv: the targets of the lowest priority, each address on its record port', async () => {
  const srv = resolver({
    resolveSrv: async () => [
      { name: 'pod-b.chat.ns.svc', port: 9002, priority: 10, weight: 5 },
      { name: '10.0.0.1', port: 9001, priority: 10, weight: 5 },
      { name: 'backup.chat.ns.svc', port: 9009, priority: 20, weight: 5 },
    ],
    resolve4: async (name) => (name === 'pod-b.chat.ns.svc' ? ['10.0.0.2'] : ['10.9.9.9']),
  });
  assert.deepEqual(await lookUp(srv, { url: 'http://_ws._tcp.chat.ns.svc', weight: 1, discover: 'srv' }), [
    { address: '10.0.0.1', port: 9001 },
    { address: '10.0.0.2', port: 9002 },
  ]);
});

test('junk in an answer is left out: names as addresses, bad ports, unresolvable targets; at most MAX_ADDRESSES', async () => {
  const srv = resolver({
    resolveSrv: async () => [
      { name: '10.0.0.1', port: 0, priority: 1, weight: 1 },
      { name: '10.0.0.2', port: 70_000, priority: 1, weight: 1 },
      { name: 'gone.ns.svc', port: 9000, priority: 1, weight: 1 },
      { name: '10.0.0.3', port: 9003, priority: 1, weight: 1 },
    ],
    resolve4: () => Promise.reject(Object.assign(new Error('nx'), { code: 'ENOTFOUND' })),
  });
  assert.deepEqual(await lookUp(srv, { url: 'http://_ws._tcp.chat.ns.svc', weight: 1, discover: 'srv' }), [
    { address: '10.0.0.3', port: 9003 },
  ]);
  const junk = resolver({ resolve4: async () => ['not-an-address', '10.0.0.1', ''] });
  assert.deepEqual(await lookUp(junk, { url: 'http://chat.ns.svc:80', weight: 1, discover: 'dns' }), [
    { address: '10.0.0.1', port: 80 },
  ]);
  const many = Array.from({ length: 3_000 }, (_, i) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`);
  const flood = resolver({ resolve4: async () => many });
  const found = await lookUp(flood, { url: 'http://chat.ns.svc:80', weight: 1, discover: 'dns' });
  assert.equal(found.length, MAX_ADDRESSES);
});

test('a lookup that hangs fails at the timeout and the next one runs an interval later', async () => {
  const clock = new FakeClock();
  let calls = 0;
  let answer: () => Promise<string[]> = () => new Promise<string[]>(() => {});
  const dns = resolver({
    resolve4: () => {
      calls++;
      return answer();
    },
  });
  const events: string[] = [];
  const discovery = new Discovery(
    [{ url: 'http://chat.ns.svc:80', weight: 1, discover: 'dns' }],
    { interval: 1_000, timeout: 200 },
    {
      resolver: dns,
      clock,
      events: {
        found: (_entry, addresses) => events.push(`found ${addresses.length}`),
        failed: (_entry, reason) => events.push(`failed ${reason}`),
      },
    },
  );
  const started = discovery.start();
  clock.advance(200);
  await started;
  assert.deepEqual(events, ['failed ETIMEOUT']);
  answer = async () => ['10.0.0.1', '10.0.0.2'];
  clock.advance(999);
  assert.equal(calls, 1, 'no lookup before the interval');
  clock.advance(1);
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(events, ['failed ETIMEOUT', 'found 2']);
  discovery.stop();
  clock.advance(5_000);
  assert.equal(calls, 2, 'stopped: no more lookups');
});
