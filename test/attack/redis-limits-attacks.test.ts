/**
 * The Redis limit store under attack, on real sockets and a real redis-server: floods (one address,
 * one subject, one bucket, many addresses) through two gateways sharing one Redis; resets while an
 * upgrade waits for a frozen Redis; Redis frozen, killed, restarted, cut off, forgetting its scripts,
 * holding keys of the wrong type, wanting a password; shutdown with connections open. Each checks
 * that the fleet's caps hold, every upgrade is answered, and no lease is left behind.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { type TestContext, test } from 'node:test';
import { startEchoBackend } from '../helpers/backends.ts';
import { handshakeHeaders, handshakeLines, rawRequest } from '../helpers/clients.ts';
import { eventually } from '../helpers/eventually.ts';
import { FLEET_SECRET, fleetGateway, fleetOfTwo, leases } from '../helpers/fleet.ts';
import type { TestGateway } from '../helpers/gateway.ts';
import { redisMissing, startRedis, type TestRedis } from '../helpers/redis.ts';
import { signHmac } from '../helpers/tokens.ts';

const skip = redisMissing();
const CLOSED = 'closed';

interface Attempt {
  /** The status answered; 0 when the connection closed first, -1 when nothing came within 5 s. */
  readonly status: number;
  readonly socket: Socket | undefined;
}

/** One upgrade from `client` through `port` (its socket kept open on 101); never rejects. */
async function attempt(port: number, client: string, headers: Record<string, string> = {}, path = '/') {
  try {
    const response = await rawRequest(port, {
      path,
      headers: { ...handshakeHeaders(), 'X-Forwarded-For': client, ...headers },
    });
    if (response.status !== 101) response.socket.destroy();
    return { status: response.status, socket: response.socket } satisfies Attempt;
  } catch (error) {
    return { status: String(error).includes('timed out') ? -1 : 0, socket: undefined } satisfies Attempt;
  }
}

/** `n` upgrades at once, alternating between the gateways; `client(i)` names the address of each. */
function flood(
  gws: readonly TestGateway[],
  n: number,
  client: (i: number) => string,
  headers = {},
  path = '/',
) {
  return Promise.all(
    Array.from({ length: n }, (_, i) => attempt(gws[i % gws.length]?.port() ?? 0, client(i), headers, path)),
  );
}

/** Leases (sorted-set members) in Redis under `pattern`. */
function tally(attempts: readonly Attempt[]): string {
  const counts: Record<number, number> = {};
  for (const { status } of attempts) counts[status] = (counts[status] ?? 0) + 1;
  return JSON.stringify(counts);
}

/** 101s whose socket is still open: connections the fleet holds at once. */
const stillOpen = (attempts: readonly Attempt[]): number =>
  attempts.filter((a) => a.status === 101 && a.socket?.closed === false).length;

function assertAnswered(attempts: readonly Attempt[], allowed: readonly number[]): void {
  assert.ok(
    attempts.every((a) => allowed.includes(a.status)),
    `every upgrade answered with one of ${allowed}: ${tally(attempts)}`,
  );
}

function closeAll(attempts: readonly Attempt[]): void {
  for (const { socket } of attempts) socket?.destroy();
}

/** A condition for eventually(): `name` on `gw` is `value`. */
const metricIs = (gw: TestGateway, name: string, value: number) => async (): Promise<boolean> =>
  (await gw.metric(name)) === value;

/** Nothing left: no lease in Redis, none booked by any gateway, every registry empty. */
async function assertNothingHeld(redis: TestRedis, gateways: readonly TestGateway[]): Promise<void> {
  await eventually(async () => (await leases(redis)) === 0, 'Redis to hold no lease', 8_000);
  for (const gw of gateways) {
    await eventually(metricIs(gw, 'wsgate_limit_store_leases', 0), 'no lease booked');
    const { registry } = gw.gateway;
    await eventually(() => registry.tunnelCount + registry.pendingCount === 0, 'an empty registry');
  }
}

/** Refresh rounds `gw` has finished (answered, failed or timed out): the +Inf bucket. */
const refreshes = (gw: TestGateway): Promise<number> =>
  gw.metric('wsgate_limit_store_seconds', { operation: 'refresh', le: '+Inf' });

test('floods of parallel upgrades through two gateways never exceed a fleet cap or the shared rate', {
  skip,
}, async (t) => {
  const redis = await startRedis(t);
  const backend = await startEchoBackend(t);
  const perClient = { maxConnections: 5, handshakeRate: { perSecond: 0.1, burst: 10 } };
  const limits = { perClient, perSubject: { maxConnections: 3 } };
  const gws = await fleetOfTwo(t, backend.url, { url: redis.url, whenUnreachable: CLOSED }, limits);
  const one = await flood(gws, 300, () => '203.0.113.50');
  t.diagnostic(`one address: ${tally(one)}`);
  assertAnswered(one, [101, 429, 503]);
  assert.ok(stillOpen(one) <= 5 && stillOpen(one) >= 1, `${stillOpen(one)} open at once (cap 5)`);
  assert.ok((await leases(redis)) <= 5, 'Redis holds at most 5 leases');
  closeAll(one);
  await assertNothingHeld(redis, gws);
  // One token subject, from many addresses.
  const bearer = { Authorization: `Bearer ${await signHmac(FLEET_SECRET, { sub: 'mallory' })}` };
  const subject = await flood(gws, 200, (i) => `10.9.${i >> 8}.${i & 255}`, bearer, '/tokens');
  t.diagnostic(`one subject: ${tally(subject)}`);
  assertAnswered(subject, [101, 429, 503]);
  assert.ok(stillOpen(subject) <= 3 && stillOpen(subject) >= 1, `${stillOpen(subject)} open (cap 3)`);
  closeAll(subject);
  // Two more floods from the first address: its bucket of 10 (5 spent) admits 5 more in all.
  const more = [
    ...(await flood(gws, 200, () => '203.0.113.50')),
    ...(await flood(gws, 200, () => '203.0.113.50')),
  ];
  closeAll(more);
  const admitted = [...one, ...more].filter((a) => a.status === 101).length;
  assert.ok(admitted <= 10, `${admitted} handshakes passed one fleet bucket of 10: ${tally(more)}`);
  await assertNothingHeld(redis, gws);
});

/** Writes an upgrade from `client` on a raw socket; the caller reads or resets it. */
function pendingUpgrade(port: number, client: string): Socket {
  const socket = connect(port, '127.0.0.1');
  socket.on('error', () => {});
  socket.write(`GET / HTTP/1.1\r\n${handshakeLines()}X-Forwarded-For: ${client}\r\n\r\n`);
  return socket;
}

/** Freezes Redis until the returned thaw (or the test's end: SIGCONT twice is harmless). */
function frozen(t: TestContext, redis: TestRedis): () => void {
  redis.freeze();
  t.after(() => redis.thaw());
  return () => redis.thaw();
}

test('clients that reset while their upgrade waits for a frozen Redis leave no lease behind', {
  skip,
}, async (t) => {
  const redis = await startRedis(t);
  const backend = await startEchoBackend(t);
  const limits = { perClient: { maxConnections: 3 } };
  const gw = await fleetGateway(t, backend.url, { url: redis.url, timeout: '1s' }, limits);
  const warm = await attempt(gw.port(), '198.51.100.200');
  assert.equal(warm.status, 101, 'the script is loaded');
  closeAll([warm]);
  await eventually(async () => (await leases(redis)) === 0, 'the warm-up lease to be given back');
  const thaw = frozen(t, redis);
  const sockets = Array.from({ length: 40 }, (_, i) => pendingUpgrade(gw.port(), `198.51.100.${i}`));
  await eventually(() => gw.gateway.registry.pendingCount === 40, 'the 40 upgrades to wait for Redis');
  for (const socket of sockets) socket.resetAndDestroy();
  // Upgrades past the give-up: admitted by this process's counts (open), then reset.
  const late = await flood([gw], 8, () => '198.51.100.200');
  assertAnswered(late, [101, 429]);
  closeAll(late);
  await eventually(() => gw.gateway.registry.pendingCount === 0, 'every waiting upgrade to end');
  thaw();
  await assertNothingHeld(redis, [gw]);
  const after = await attempt(gw.port(), '198.51.100.200');
  closeAll([after]);
  assert.equal(after.status, 101, 'the address is free again');
});

test('Redis frozen, then killed and restarted, mid-flood: every upgrade answered, the cap holds after', {
  skip,
}, async (t) => {
  const redis = await startRedis(t);
  const backend = await startEchoBackend(t);
  const limits = { perClient: { maxConnections: 4 } };
  const gws = await fleetOfTwo(
    t,
    backend.url,
    { url: redis.url, whenUnreachable: CLOSED, leaseTtl: '6s' },
    limits,
  );
  const thaw = frozen(t, redis);
  const started = performance.now();
  const icy = await flood(gws, 150, (i) => `192.0.2.${i % 50}`);
  assert.ok(performance.now() - started < 3_000, 'a frozen Redis is given up on quickly');
  assertAnswered(icy, [503]);
  thaw();
  await assertNothingHeld(redis, gws);
  // A stream of upgrades from 40 addresses, 20 at a time; Redis is killed after 100 answers and
  // started again (empty) after 100 more; the gateways rebuild the counts, and the stream ends 100
  // answers after the rebuild. The stream stops after 60 s whatever happens.
  const all: Attempt[] = [];
  const perClient = new Map<string, Attempt[]>();
  let done = false;
  const deadline = setTimeout(() => {
    done = true;
  }, 60_000);
  const worker = async (w: number): Promise<void> => {
    for (let i = 0; !done; i++) {
      const client = `10.7.0.${(w * 7 + i) % 40}`;
      const answer = await attempt(gws[w % 2]?.port() ?? 0, client);
      all.push(answer);
      perClient.set(client, [...(perClient.get(client) ?? []), answer]);
    }
  };
  const workers = Promise.all(Array.from({ length: 20 }, (_, w) => worker(w)));
  let rebuiltAt = 0;
  try {
    await eventually(() => all.length >= 100, '100 answers before the kill', 10_000);
    await redis.stop();
    const killedAt = all.length;
    await eventually(() => all.length >= killedAt + 100, '100 answers while Redis is down', 10_000);
    await redis.start();
    for (const gw of gws) {
      await eventually(
        () => gw.logs.some((line) => String(line.msg).includes('lost its counts')),
        'a rebuild',
        8_000,
      );
      await eventually(metricIs(gw, 'wsgate_limit_store_up', 1), 'the rebuild to end', 8_000);
    }
    rebuiltAt = all.length;
    await eventually(() => all.length >= rebuiltAt + 100, '100 answers after the rebuild', 10_000);
  } finally {
    done = true;
    clearTimeout(deadline);
  }
  await workers;
  const decided = all.slice(rebuiltAt).filter((a) => a.status === 101 || a.status === 429).length;
  assert.ok(decided > 0, `Redis decides again after the rebuild: ${tally(all.slice(rebuiltAt))}`);
  const most = Math.max(...[...perClient.values()].map(stillOpen));
  t.diagnostic(`${tally(all)}, ${stillOpen(all)} open, at most ${most} from one address`);
  assertAnswered(all, [101, 429, 503]);
  assert.ok(most <= 4, `${most} open at once from one address (cap 4)`);
  await eventually(
    async () => (await leases(redis)) === stillOpen(all),
    'Redis to count what is open',
    8_000,
  );
  closeAll(all);
  await eventually(async () => (await leases(redis)) === 0, 'no lease after the restart', 8_000);
  const again = await flood(gws, 60, () => '192.0.2.212');
  assert.ok(stillOpen(again) <= 4 && stillOpen(again) >= 1, `after the restart: ${stillOpen(again)} (cap 4)`);
  closeAll(again);
  await assertNothingHeld(redis, gws);
});

test('regression: keys of the wrong type get that address whenUnreachable, and no one else', {
  skip,
}, async (t) => {
  const redis = await startRedis(t);
  const backend = await startEchoBackend(t);
  const limits = { perClient: { maxConnections: 2, handshakeRate: { perSecond: 10, burst: 10 } } };
  const gw = await fleetGateway(t, backend.url, { url: redis.url, whenUnreachable: CLOSED }, limits);
  await redis.command(['SET', 'wsgate:client:{1.2.3.4}:connections', 'x']);
  await redis.command(['RPUSH', 'wsgate:client:{1.2.3.5}:rate', 'x']);
  for (const client of ['1.2.3.4', '1.2.3.5']) {
    const poisoned = await attempt(gw.port(), client);
    assert.equal(poisoned.status, 503, `${client}: decided as whenUnreachable (closed) says`);
  }
  assert.equal(await redis.command(['GET', 'wsgate:client:{1.2.3.4}:connections']), 'x', 'left as it was');
  // Redis answered (an error about one key): it is not unreachable for anyone else.
  const bystander = await attempt(gw.port(), '198.51.100.77');
  closeAll([bystander]);
  assert.equal(bystander.status, 101, 'another address is decided by Redis, not refused with 503');
});

test('regression: a poisoned lease key held open does not switch the fleet cap off (open)', {
  skip,
}, async (t) => {
  const redis = await startRedis(t);
  const backend = await startEchoBackend(t);
  const limits = { perClient: { maxConnections: 1 } };
  const [a, b] = await fleetOfTwo(t, backend.url, { url: redis.url, leaseTtl: '3s' }, limits);
  await redis.command(['SET', 'wsgate:client:{1.2.3.4}:connections', 'x']);
  const poisoned = await attempt(a.port(), '1.2.3.4');
  assert.equal(poisoned.status, 101, "open: admitted by this process's own count");
  const held = await attempt(b.port(), '198.51.100.78');
  assert.equal(held.status, 101);
  // Two refresh rounds of `a` (one a second) meet the poisoned key.
  const before = await refreshes(a);
  await eventually(async () => (await refreshes(a)) >= before + 2, 'two refresh rounds');
  const over = await attempt(a.port(), '198.51.100.78');
  t.diagnostic(`wsgate_limit_store_up of a: ${await a.metric('wsgate_limit_store_up')}`);
  closeAll([poisoned, held, over]);
  assert.equal(over.status, 429, 'b holds the one connection the fleet cap allows that address');
});

test('a Redis that wants a password the gateway lacks (or gets wrong): whenUnreachable, no crash', {
  skip,
}, async (t) => {
  const redis = await startRedis(t, { password: 'right-pa55' });
  const backend = await startEchoBackend(t);
  const cases = [
    { settings: { url: redis.url, whenUnreachable: CLOSED }, expected: 503 },
    { settings: { url: redis.url, whenUnreachable: CLOSED, password: 'wrong-pa55' }, expected: 503 },
    { settings: { url: redis.url, password: 'wrong-pa55' }, expected: 101 },
  ];
  for (const { settings, expected } of cases) {
    const started = performance.now();
    const gw = await fleetGateway(t, backend.url, settings, { perClient: { maxConnections: 2 } });
    assert.ok(performance.now() - started < 4_000, 'the gateway starts within its bounded wait');
    const answers = await flood([gw], 2, () => '192.0.2.80');
    closeAll(answers);
    assertAnswered(answers, [expected]);
    assert.equal(await gw.metric('wsgate_limit_store_up'), 0);
  }
  assert.equal(await leases(redis), 0);
});

test('a flood of distinct addresses: Redis keys expire, tracked clients stay bounded', {
  skip,
}, async (t) => {
  const redis = await startRedis(t);
  const backend = await startEchoBackend(t);
  const limits = {
    maxTrackedClients: 50,
    perClient: { maxConnections: 2, handshakeRate: { perSecond: 5, burst: 2 } },
  };
  const gws = await fleetOfTwo(t, backend.url, { url: redis.url }, limits);
  const all: Attempt[] = [];
  for (let wave = 0; wave < 4; wave++) {
    const answers = await flood(gws, 100, (i) => `10.${wave}.${i >> 8}.${i & 255}`);
    closeAll(answers);
    all.push(...answers);
    for (const gw of gws) {
      const tracked = await gw.metric('wsgate_admission_tracked_clients');
      assert.ok(tracked <= 50, `tracked clients ${tracked} stay within maxTrackedClients`);
    }
  }
  t.diagnostic(`answers ${tally(all)}, keys after ${await redis.command(['DBSIZE'])}`);
  assertAnswered(all, [101, 429]);
  await assertNothingHeld(redis, gws);
  // Every key but the one that says since when Redis has counted.
  const keys = async () => (await redis.command(['KEYS', '*'])) as string[];
  await eventually(async () => (await keys()).length === 1, 'every key to expire', 5_000);
  assert.deepEqual(await keys(), ['wsgate:counting-since']);
});

test('a gateway shut down with connections open takes its leases out of Redis', { skip }, async (t) => {
  const redis = await startRedis(t);
  const backend = await startEchoBackend(t);
  const [a, b] = await fleetOfTwo(t, backend.url, { url: redis.url }, { perClient: { maxConnections: 10 } });
  const onA = await flood([a], 6, (i) => `192.0.2.${90 + (i % 3)}`);
  const onB = await flood([b], 2, () => '192.0.2.90');
  assertAnswered([...onA, ...onB], [101]);
  assert.equal(await leases(redis), 8);
  await a.gateway.shutdown();
  assert.equal(await a.metric('wsgate_limit_store_leases'), 0);
  // Long before the 30 s lease time: a clean shutdown gives its leases back.
  await eventually(async () => (await leases(redis)) === 2, "the shut-down gateway's 6 leases to go", 3_000);
  closeAll([...onA, ...onB]);
  await assertNothingHeld(redis, [b]);
});

test('a gateway started while Redis is down counts in Redis once it is up', { skip }, async (t) => {
  const redis = await startRedis(t);
  const backend = await startEchoBackend(t);
  const limits = { perClient: { maxConnections: 1 } };
  // A rebuild lasts a third of leaseTtl (or 2 s, the longest reconnection delay) and a timeout.
  const settings = { url: redis.url, whenUnreachable: CLOSED, leaseTtl: '3s' };
  await redis.stop();
  const late = await fleetGateway(t, backend.url, settings, limits);
  const down = await attempt(late.port(), '192.0.2.99');
  assert.equal(down.status, 503, 'closed while Redis is down');
  await redis.start();
  await eventually(metricIs(late, 'wsgate_limit_store_up', 1), 'the store to connect', 8_000);
  // Redis started empty: for all it knows another gateway holds leases it lost, so it answers
  // only once every gateway has had the time to add its own back.
  const rebuilding = await attempt(late.port(), '192.0.2.99');
  assert.equal(rebuilding.status, 503, 'closed while the counts are rebuilt');
  assert.equal(await late.metric('wsgate_limit_store_up'), 0, 'not up while rebuilding');
  await eventually(metricIs(late, 'wsgate_limit_store_up', 1), 'the rebuild to end', 8_000);
  const early = await fleetGateway(t, backend.url, settings, limits);
  const held = await attempt(early.port(), '192.0.2.99');
  const over = await attempt(late.port(), '192.0.2.99');
  closeAll([held, over]);
  assert.deepEqual([held.status, over.status], [101, 429]);
});

/** Bytes sent to Redis (listening on `port`) that it has not read yet, from /proc/net/tcp. */
function unreadAtRedis(port: number): number {
  const hex = `:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  let total = 0;
  for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const [, local, , state, queues] = line.trim().split(/\s+/);
    if (local?.endsWith(hex) && state === '01') total += Number.parseInt(queues?.split(':')[1] ?? '0', 16);
  }
  return total;
}

test('regression: connections closed while a refresh meets NOSCRIPT are not counted again', {
  skip,
}, async (t) => {
  const redis = await startRedis(t);
  const backend = await startEchoBackend(t);
  const limits = { perClient: { maxConnections: 5 } };
  const gw = await fleetGateway(t, backend.url, { url: redis.url, leaseTtl: '3s', timeout: '1s' }, limits);
  const open = await flood([gw], 5, () => '192.0.2.120');
  assertAnswered(open, [101]);
  // Redis forgets its scripts (SCRIPT FLUSH; a restart or failover does too): the refresh meets NOSCRIPT.
  await redis.command(['SCRIPT', 'FLUSH']);
  const thaw = frozen(t, redis);
  await eventually(() => unreadAtRedis(redis.port) > 0, 'a refresh to reach the frozen Redis', 3_000);
  const rounds = await refreshes(gw);
  closeAll(open);
  await eventually(metricIs(gw, 'wsgate_limit_store_leases', 0), 'leases given back');
  thaw();
  await eventually(async () => (await refreshes(gw)) > rounds, 'the refresh round to end');
  // Before anything else opens (a probe's own lease would be counted until its ZREM lands).
  assert.equal(await leases(redis), 0, 'the closed connections are not counted in Redis');
  const next = await attempt(gw.port(), '192.0.2.120');
  closeAll([next]);
  assert.equal(next.status, 101, 'nothing is open from that address: the cap of 5 allows one more');
});

test('regression: connections closed while cut off from a Redis that kept its data stop counting', {
  skip,
}, async (t) => {
  const redis = await startRedis(t);
  const backend = await startEchoBackend(t);
  const gw = await fleetGateway(t, backend.url, { url: redis.url }, { perClient: { maxConnections: 2 } });
  const open = await flood([gw], 2, () => '192.0.2.130');
  assertAnswered(open, [101]);
  // The gateway's connection drops and cannot come back for a while; Redis keeps its data.
  await redis.command(['CONFIG', 'SET', 'maxclients', '1']);
  await redis.command(['CLIENT', 'KILL', 'TYPE', 'normal', 'SKIPME', 'yes']);
  await eventually(metricIs(gw, 'wsgate_limit_store_up', 0), 'the store to be cut off');
  closeAll(open);
  await eventually(metricIs(gw, 'wsgate_limit_store_leases', 0), 'leases given back');
  await redis.command(['CONFIG', 'SET', 'maxclients', '10000']);
  await eventually(metricIs(gw, 'wsgate_limit_store_up', 1), 'the store to be back', 8_000);
  // Well within the 30 s the leases would otherwise live, and before a probe adds its own.
  await eventually(async () => (await leases(redis)) === 0, 'the leases given back while cut off to go');
  const next = await attempt(gw.port(), '192.0.2.130');
  closeAll([next]);
  assert.equal(next.status, 101, 'nothing is open from that address (cap 2), not refused for 30 s');
});
