/**
 * Fleet-wide limits on a real redis-server (started by each test): gateways that share one Redis
 * share one per-subject cap, one per-client cap and one handshake rate; a connection's lease is
 * refreshed while it lives and given back when it closes; a gateway killed with SIGKILL stops
 * counting once its leases expire; Redis stopped or frozen mid-test gives what `whenUnreachable`
 * says (503, or this process's own counts) with no crash, and its counts heal when it is back;
 * TLS with a password from a file.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import type { WebSocket } from 'ws';
import { startEchoBackend } from '../helpers/backends.ts';
import { startCliGateway, writeConfig } from '../helpers/cli.ts';
import { closeOf, handshakeHeaders, openClient, rawRequest } from '../helpers/clients.ts';
import { eventually } from '../helpers/eventually.ts';
import { FLEET_SECRET, fleetOfTwo, leases } from '../helpers/fleet.ts';
import { redisMissing, startRedis } from '../helpers/redis.ts';
import { signHmac } from '../helpers/tokens.ts';

const skip = redisMissing();
const TLS_DIR = resolve(import.meta.dirname, '../fixtures/tls');

/** The status of an upgrade to `path` from `client`, with `headers` (the socket closed after). */
async function upgradeStatus(
  port: number,
  client: string,
  headers: Record<string, string> = {},
  path = '/',
): Promise<{ status: number; retryAfter: string | undefined; close: () => void }> {
  const response = await rawRequest(port, {
    path,
    headers: { ...handshakeHeaders(), 'X-Forwarded-For': client, ...headers },
  });
  const retryAfter = response.headers['retry-after'];
  return {
    status: response.status,
    retryAfter: typeof retryAfter === 'string' ? retryAfter : undefined,
    close: () => response.socket.destroy(),
  };
}

test('two gateways share one per-subject cap through Redis; a closed connection frees its slot', {
  skip,
}, async (t) => {
  const redis = await startRedis(t);
  const backend = await startEchoBackend(t);
  const limits = { perSubject: { maxConnections: 2 } };
  const [a, b] = await fleetOfTwo(t, backend.url, { url: redis.url }, limits);
  const alice = { headers: { Authorization: `Bearer ${await signHmac(FLEET_SECRET, { sub: 'alice' })}` } };
  const first = await openClient(a.wsUrl('/tokens'), undefined, alice);
  const second = await openClient(b.wsUrl('/tokens'), undefined, alice);
  for (const gw of [a, b]) {
    const third = await upgradeStatus(gw.port(), '192.0.2.1', alice.headers, '/tokens');
    third.close();
    assert.equal(third.status, 429, 'the fleet holds two of alice already');
    assert.equal(third.retryAfter, '1');
  }
  assert.equal(await leases(redis, 'wsgate:subject:*'), 2, 'one lease per connection, in one key');
  const bob = { headers: { Authorization: `Bearer ${await signHmac(FLEET_SECRET, { sub: 'bob' })}` } };
  const other = await openClient(b.wsUrl('/tokens'), undefined, bob);
  first.close();
  await closeOf(first);
  await eventually(
    async () => (await leases(redis, 'wsgate:subject:*')) === 2,
    'alice to hold one (bob one)',
  );
  const again = await openClient(b.wsUrl('/tokens'), undefined, alice);
  assert.equal(await a.metric('wsgate_upgrades_total', { code: 'SUBJECT_CONNECTIONS_EXCEEDED' }), 1);
  assert.equal(await b.metric('wsgate_limit_store_up'), 1);
  for (const ws of [second, other, again] as WebSocket[]) ws.close();
  await eventually(async () => (await leases(redis, 'wsgate:*')) === 0, 'every lease to be given back');
});

test('two gateways share one per-client cap and one handshake rate', { skip }, async (t) => {
  const redis = await startRedis(t);
  const backend = await startEchoBackend(t);
  const limits = { perClient: { maxConnections: 2, handshakeRate: { perSecond: 0.2, burst: 4 } } };
  const [a, b] = await fleetOfTwo(t, backend.url, { url: redis.url }, limits);
  const held = [await upgradeStatus(a.port(), '198.51.100.1'), await upgradeStatus(b.port(), '198.51.100.1')];
  assert.deepEqual(
    held.map((r) => r.status),
    [101, 101],
  );
  const third = await upgradeStatus(a.port(), '198.51.100.1');
  third.close();
  assert.equal(third.status, 429, 'two open through the fleet already');
  assert.equal(await a.metric('wsgate_upgrades_total', { code: 'CLIENT_CONNECTIONS_EXCEEDED' }), 1);
  for (const response of held) response.close();
  await eventually(async () => (await leases(redis, 'wsgate:client:*')) === 0, 'the leases to be given back');
  // 2 of the 4 tokens were spent (one through each gateway); two more, then the shared rate refuses.
  for (const gw of [b, a]) {
    const next = await upgradeStatus(gw.port(), '198.51.100.1');
    assert.equal(next.status, 101);
    next.close();
  }
  const over = await upgradeStatus(b.port(), '198.51.100.1');
  over.close();
  assert.equal(over.status, 429);
  assert.ok(Number(over.retryAfter) >= 1, 'the seconds until the next token');
  assert.equal(await b.metric('wsgate_upgrades_total', { code: 'HANDSHAKE_RATE_LIMITED' }), 1);
  const other = await upgradeStatus(a.port(), '198.51.100.2');
  other.close();
  assert.equal(other.status, 101, 'another address has its own bucket');
});

/** The config of a gateway process counting per client address in `redisUrl`. */
function processConfig(backendUrl: string, redisUrl: string, whenUnreachable = 'open'): string {
  return `
log: { level: info }
admin: { address: 127.0.0.1, port: 0 }
listeners:
  public: { address: 127.0.0.1, port: 0 }
forwarding: { trustedProxies: [127.0.0.1] }
admission:
  perClient: { maxConnections: 2 }
  store:
    redis: { url: "${redisUrl}", leaseTtl: 2s, timeout: 200ms, whenUnreachable: ${whenUnreachable} }
routes:
  echo: { pool: echo }
pools:
  echo: { backends: ["${backendUrl}"] }
`;
}

test('a gateway killed with SIGKILL stops counting once its leases expire; live leases are refreshed', {
  skip,
}, async (t) => {
  const redis = await startRedis(t);
  const backend = await startEchoBackend(t);
  const file = writeConfig(t, processConfig(backend.url, redis.url));
  const [doomed, survivor] = [await startCliGateway(t, file), await startCliGateway(t, file)];
  const keptAt = performance.now();
  const kept = await upgradeStatus(survivor.port, '203.0.113.5');
  const lost = await upgradeStatus(doomed.port, '203.0.113.5');
  assert.deepEqual([kept.status, lost.status], [101, 101]);
  const refused = await upgradeStatus(survivor.port, '203.0.113.5');
  refused.close();
  assert.equal(refused.status, 429, 'the doomed gateway holds one of the two');
  const exited = new Promise((done) => doomed.child.once('exit', done));
  doomed.child.kill('SIGKILL');
  await exited;
  const killedAt = performance.now();
  // Within the lease time (2 s, plus the refresh rounds' slack), the dead gateway's lease is gone.
  await eventually(
    async () => {
      const next = await upgradeStatus(survivor.port, '203.0.113.5');
      next.close();
      return next.status === 101;
    },
    "the killed gateway's lease to expire",
    10_000,
  );
  const freedAfterMs = performance.now() - killedAt;
  t.diagnostic(`the killed gateway's lease was freed ${Math.round(freedAfterMs)} ms after the kill`);
  // The survivor's connection has lived longer than a lease: it is still counted (refreshed) once
  // the probe that got through has given its own lease back.
  await eventually(
    async () => (await leases(redis, 'wsgate:client:*')) === 1,
    'the probe to give its lease back',
  );
  assert.ok(performance.now() - keptAt > 2_000, 'the survivor has held its connection for more than a lease');
  const stillOver = await upgradeStatus(survivor.port, '203.0.113.5');
  const overAgain = await upgradeStatus(survivor.port, '203.0.113.5');
  stillOver.close();
  overAgain.close();
  assert.deepEqual([stillOver.status, overAgain.status], [101, 429]);
  kept.close();
  lost.close();
});

/** The value of `name` (summed over labels matching `labels`) in the exposition at `url`. */
async function scraped(port: number, name: string, labels: Record<string, string> = {}): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  let total = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (!Object.entries(labels).every(([key, value]) => line.includes(`${key}="${value}"`))) continue;
    total += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return total;
}

/** The admin port of a gateway process, from its log. */
function adminPort(lines: Record<string, unknown>[]): number {
  const admin = lines.find((line) => line.msg === 'admin listening');
  assert.ok(admin, 'the admin server listens');
  return Number(admin.port);
}

test('Redis stopped mid-test: closed answers 503, open decides by its own counts; no crash, and the counts heal', {
  skip,
}, async (t) => {
  const redis = await startRedis(t);
  const backend = await startEchoBackend(t);
  const closed = await startCliGateway(t, writeConfig(t, processConfig(backend.url, redis.url, 'closed')));
  const open = await startCliGateway(t, writeConfig(t, processConfig(backend.url, redis.url, 'open')));
  const before = await upgradeStatus(open.port, '203.0.113.9');
  assert.equal(before.status, 101);
  await redis.stop();
  const refused = await upgradeStatus(closed.port, '203.0.113.8');
  refused.close();
  assert.equal(refused.status, 503, 'closed: refused while Redis cannot be asked');
  assert.equal(refused.retryAfter, '1');
  const admitted = await upgradeStatus(open.port, '203.0.113.9');
  assert.equal(admitted.status, 101, "open: this process's own count (one open) allows a second");
  const overLocal = await upgradeStatus(open.port, '203.0.113.9');
  overLocal.close();
  assert.equal(overLocal.status, 429, "open: this process's own count holds the cap");
  const closedAdmin = adminPort(closed.lines());
  const openAdmin = adminPort(open.lines());
  assert.equal(await scraped(closedAdmin, 'wsgate_limit_store_unreachable_total', { action: 'refused' }), 1);
  assert.equal(await scraped(openAdmin, 'wsgate_limit_store_unreachable_total', { action: 'admitted' }), 1);
  assert.equal(await scraped(openAdmin, 'wsgate_limit_store_up'), 0);
  const status = (await (await fetch(`http://127.0.0.1:${openAdmin}/status.json`)).json()) as {
    limitStore: { store: string; up: boolean; leases: number };
  };
  assert.deepEqual(status.limitStore, { store: 'redis', up: false, leases: 2 }, '/status.json says so');
  assert.ok(
    open
      .lines()
      .some((line) => line.level === 'warn' && String(line.msg).includes('limit store does not answer')),
    `the outage is logged:\n${open.output()}`,
  );
  // A frozen Redis (connections open, nothing answered) is given up on after `timeout`.
  await redis.start();
  await eventually(async () => (await scraped(openAdmin, 'wsgate_limit_store_up')) === 1, 'Redis to be back');
  // Heal: the refresh adds back both leases of the open gateway, the one admitted during the outage too.
  await eventually(
    async () => (await leases(redis, 'wsgate:client:*')) === 2,
    'the leases to be added back',
    10_000,
  );
  redis.freeze();
  const frozen = await upgradeStatus(closed.port, '203.0.113.7');
  frozen.close();
  assert.equal(frozen.status, 503, 'a frozen Redis is given up on after its timeout');
  redis.thaw();
  assert.equal(closed.child.exitCode, null, 'the closed gateway is still running');
  assert.equal(open.child.exitCode, null, 'the open gateway is still running');
  before.close();
  admitted.close();
});

test('TLS to Redis with a password from a file', { skip }, async (t) => {
  const redis = await startRedis(t, {
    password: 'pa55-word',
    tls: {
      cert: join(TLS_DIR, 'server.pem'),
      key: join(TLS_DIR, 'server-key.pem'),
      ca: join(TLS_DIR, 'ca.pem'),
    },
  });
  const backend = await startEchoBackend(t);
  const dir = resolve(writeConfig(t, ''), '..');
  writeFileSync(join(dir, 'redis-password'), 'pa55-word\n');
  const settings = {
    url: redis.url,
    passwordFile: join(dir, 'redis-password'),
    tls: { ca: join(TLS_DIR, 'ca.pem') },
  };
  const limits = { perClient: { maxConnections: 1 } };
  const [a, b] = await fleetOfTwo(t, backend.url, settings, limits);
  const held = await upgradeStatus(a.port(), '192.0.2.44');
  assert.equal(held.status, 101);
  const refused = await upgradeStatus(b.port(), '192.0.2.44');
  refused.close();
  assert.equal(refused.status, 429, 'the other gateway sees the lease over TLS');
  assert.equal(await leases(redis, 'wsgate:client:*'), 1);
  held.close();
});
