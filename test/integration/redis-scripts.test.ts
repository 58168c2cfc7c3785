/**
 * The Redis limit store's scripts and lease keeping, run on a real redis-server (started by each
 * test) without a gateway in front: the handshake rate holds at high rates (regression: the
 * arrival time stored through tostring kept a tenth of a millisecond, and rates over about
 * 20,000/s were never limited); a key's expiry is never shortened by a gateway with a shorter
 * lease; a refresh skips a key of another type and refreshes the rest; 15,000 leases are refreshed
 * and 15,000 given back at once without filling the connection's command queue (regression: one
 * script per key, all at once, overflowed it and switched the store off).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { RedisStoreSettings } from '../../src/config/limit-store-schema.ts';
import { LeaseKeeper } from '../../src/limits/lease-keeper.ts';
import { connectRedis } from '../../src/limits/redis-connection.ts';
import { RedisHealth } from '../../src/limits/redis-health.ts';
import { ADMIT_CLIENT, HOLD_SUBJECT, REFRESH_LEASES } from '../../src/limits/redis-scripts.ts';
import { ScriptRunner } from '../../src/limits/script-runner.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { SYSTEM_CLOCK } from '../../src/tunnel/sweeper.ts';
import { eventually } from '../helpers/eventually.ts';
import { leases } from '../helpers/fleet.ts';
import { redisMissing, startRedis, type TestRedis } from '../helpers/redis.ts';

const skip = redisMissing();

/** EVAL of `script` inside one MULTI `times` times, with Redis's TIME before and after (µs). */
async function inOneTransaction(
  redis: TestRedis,
  times: number,
  command: readonly string[],
): Promise<{ answers: unknown[]; elapsedMs: number }> {
  await redis.command(['MULTI']);
  await redis.command(['TIME']);
  for (let i = 0; i < times; i++) await redis.command(command);
  await redis.command(['TIME']);
  const replies = (await redis.command(['EXEC'])) as unknown[];
  const micros = (time: unknown): number => {
    const [seconds, micro] = time as [string, string];
    return Number(seconds) * 1e6 + Number(micro);
  };
  return {
    answers: replies.slice(1, -1),
    elapsedMs: (micros(replies.at(-1)) - micros(replies[0])) / 1000,
  };
}

test('regression: the handshake rate holds at 25,000 and 100,000 per second', { skip }, async (t) => {
  const redis = await startRedis(t);
  for (const [perSecond, burst] of [
    [25_000, 25],
    [100_000, 100],
  ] as const) {
    const key = `rate:${perSecond}`;
    const command = [
      'EVAL',
      ADMIT_CLIENT.source,
      '3',
      key,
      `conns:${perSecond}`,
      'counting-since',
      '0',
      String(1000 / perSecond),
      String(burst),
      'm',
      '1000',
      '2000',
    ];
    const { answers, elapsedMs } = await inOneTransaction(redis, 2_000, command);
    const admitted = answers.filter((answer) => Array.isArray(answer) && Number(answer[0]) === 0).length;
    // A token bucket admits the burst plus what refills while the transaction runs (its clock
    // has a millisecond's resolution: one more millisecond of tokens).
    const allowed = burst + Math.ceil((elapsedMs + 1) * (perSecond / 1000));
    t.diagnostic(
      `${perSecond}/s burst ${burst}: ${admitted} of 2,000 admitted in ${elapsedMs.toFixed(2)} ms`,
    );
    // On a busy machine the transaction can take as long as 2,000 intervals: then all may pass.
    if (allowed < 2_000) assert.ok(admitted < 2_000, `${perSecond}/s: not every request is admitted`);
    assert.ok(admitted <= allowed, `${perSecond}/s: ${admitted} admitted, at most ${allowed}`);
    assert.ok(admitted >= burst, `${perSecond}/s: the burst is admitted`);
    // Whatever the machine's speed: the arrival time keeps the hundredths of a millisecond.
    const fresh = `fresh:${perSecond}`;
    // Read in the same transaction: the key lives only as long as the bucket is not full (1 ms).
    await redis.command(['MULTI']);
    await redis.command([...command.slice(0, 3), fresh, ...command.slice(4)]);
    await redis.command(['GET', fresh]);
    const stored = Number(((await redis.command(['EXEC'])) as unknown[])[1]);
    const fraction = stored - Math.floor(stored);
    assert.ok(
      Math.abs(fraction - 1000 / perSecond) < 0.001,
      `${perSecond}/s: the stored arrival time ${stored} keeps its interval`,
    );
  }
});

test("a key's expiry is never shortened by a gateway with a shorter lease", { skip }, async (t) => {
  const redis = await startRedis(t);
  await redis.command(['SET', 'counting-since', '0']);
  const hold = (member: string, ttl: string) =>
    redis.command(['EVAL', HOLD_SUBJECT.source, '2', 'subject', 'counting-since', '10', member, ttl, '2000']);
  await hold('long', '60000');
  await hold('short', '1000');
  assert.ok(Number(await redis.command(['PTTL', 'subject'])) > 50_000, 'the 60 s lease keeps the key');
  const refresh = ['EVAL', REFRESH_LEASES.source, '1', 'subject', '1000', '1', 'short'];
  await redis.command(refresh);
  assert.ok(Number(await redis.command(['PTTL', 'subject'])) > 50_000, 'a short refresh does not shorten it');
});

test('a refresh skips a key of another type and refreshes the others', { skip }, async (t) => {
  const redis = await startRedis(t);
  await redis.command(['SET', 'poisoned', 'x']);
  const skipped = await redis.command(
    ['EVAL', REFRESH_LEASES.source, '2', 'poisoned', 'good'].concat(['30000', '1', 'a', '2', 'b', 'c']),
  );
  assert.equal(Number(skipped), 1);
  assert.equal(await redis.command(['GET', 'poisoned']), 'x', 'left as it was');
  assert.deepEqual(((await redis.command(['ZRANGE', 'good', '0', '-1'])) as string[]).sort(), ['b', 'c']);
});

test('regression: 15,000 leases are refreshed, and given back at once, without filling the command queue', {
  skip,
}, async (t) => {
  const redis = await startRedis(t);
  const settings: RedisStoreSettings = {
    url: redis.url,
    keyPrefix: 'wsgate:',
    leaseTtl: 30_000,
    timeout: 2_000,
    whenUnreachable: 'open',
  };
  const connection = connectRedis(settings);
  const warnings: string[] = [];
  const log = createLogger({
    level: 'info',
    format: 'json',
    destination: { write: (line: string) => void warnings.push(line) },
  });
  const health = new RedisHealth(connection, SYSTEM_CLOCK, log, 'open');
  connection.on('error', (error) => health.connectionError(error));
  const runner = new ScriptRunner(connection, settings.timeout, () => {});
  const keeper = new LeaseKeeper({
    connection,
    runner,
    health,
    clock: SYSTEM_CLOCK,
    leaseTtl: settings.leaseTtl,
  });
  await connection.connect();
  t.after(() => connection.destroy());
  for (let i = 0; i < 15_000; i++)
    keeper.hold(`wsgate:client:{10.${i >> 8}.${i & 255}.1}:connections`, `m${i}`);
  await keeper.caughtUp();
  assert.equal(await leases(redis), 15_000, 'every lease is in Redis');
  assert.ok(health.up, `the store stays up; log:\n${warnings.join('')}`);
  for (let i = 0; i < 15_000; i++)
    keeper.giveBack(`wsgate:client:{10.${i >> 8}.${i & 255}.1}:connections`, `m${i}`);
  await eventually(async () => (await leases(redis)) === 0, 'every lease to be taken out', 10_000);
  assert.ok(health.up, `the store stays up; log:\n${warnings.join('')}`);
  assert.equal(keeper.size, 0);
  await keeper.close();
});
