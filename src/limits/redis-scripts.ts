/**
 * The Lua scripts the Redis limit store runs, each one atomic in Redis, all on Redis's own clock
 * (`TIME`), so that replicas whose clocks disagree still agree on when a lease expires.
 *
 * A connection cap is a sorted set per client address or subject: one member per open connection
 * (a lease), scored with when it expires. Expired members are dropped before counting, so the
 * connections of a gateway that died stop counting once their leases expire; live gateways refresh
 * theirs every third of the lease time. The key itself expires with its last lease.
 *
 * A handshake rate is GCRA (the generic cell rate algorithm, a token bucket kept as one number):
 * the theoretical arrival time of the next request. A request may pass when that time is no more
 * than `burst` intervals ahead of now; the key expires when the bucket would be full again.
 *
 * A cap's count is only true when Redis holds every live gateway's leases. A Redis that lost its
 * data (restarted without persistence, flushed, failed over to an empty replica) does not, until
 * each gateway has added its leases back (at its reconnection, or its next refresh). So the
 * decisions check a marker, the time Redis started counting: when it is missing it is set, and
 * for the rebuild window after it (one refresh interval, or the longest reconnection delay, plus a
 * timeout) a cap answers "rebuilding" instead of deciding on counts it knows are short.
 *
 * Beside each script, what its answer means for the upgrade.
 */
import { createHash } from 'node:crypto';
import type { Rejection } from '../errors/rejection.ts';
import { UnexpectedAnswer } from './redis-connection.ts';

export interface RedisScript {
  readonly source: string;
  readonly sha: string;
}

function script(source: string): RedisScript {
  return { source, sha: createHash('sha1').update(source).digest('hex') };
}

/** Redis's clock in milliseconds, as `now`. */
const NOW = `local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)`;

/**
 * `keep(key, ms)`: the key lives at least `ms` more. Never shortened, so a gateway with a shorter
 * `leaseTtl` (during a rolling change of it) cannot make a key expire under a longer lease.
 */
const KEEP = `local function keep(key, ms)
  if redis.call('PTTL', key) < ms then redis.call('PEXPIRE', key, ms) end
end`;

/**
 * `rebuilding(key, window)`: the milliseconds left of the rebuild window of the marker `key`
 * (zero or less: the counts are whole); a missing marker is set to now, starting one.
 */
const REBUILDING = `local function rebuilding(key, window)
  local since = tonumber(redis.call('GET', key))
  if not since then
    redis.call('SET', key, now)
    return window
  end
  return since + window - now
end`;

/** Drops the expired leases of KEYS[n] and counts the rest: `open`. */
const openLeases = (key: string) => `redis.call('ZREMRANGEBYSCORE', ${key}, '-inf', now)
local open = redis.call('ZCARD', ${key})`;

/**
 * One more upgrade from one client address. KEYS: the rate key, the connections key, the marker.
 * ARGV: max connections (0: no cap), interval in ms (0: no rate), burst, lease member, lease ms,
 * rebuild window ms. Returns {0, 0} (admitted, the lease added), {1, 0} (too many connections),
 * {2, wait ms} (too fast) or {3, ms left} (the counts are being rebuilt: nothing was decided).
 * The arrival time is stored as a number, not through tostring (14 digits, which at today's
 * milliseconds leaves a tenth of one: intervals under that would never move it).
 */
export const ADMIT_CLIENT = script(`${NOW}
${KEEP}
${REBUILDING}
local max = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
if max > 0 then
  local left = rebuilding(KEYS[3], tonumber(ARGV[6]))
  if left > 0 then return {3, left} end
  ${openLeases('KEYS[2]')}
  if open >= max then return {1, 0} end
end
if interval > 0 then
  local stored = redis.call('GET', KEYS[1])
  local tat = stored and tonumber(stored) or now
  if tat < now then tat = now end
  local wait = tat + interval - interval * tonumber(ARGV[3]) - now
  if wait > 0 then return {2, math.ceil(wait)} end
  redis.call('SET', KEYS[1], tat + interval, 'PX', math.ceil(tat + interval - now))
end
if max > 0 then
  local ttl = tonumber(ARGV[5])
  redis.call('ZADD', KEYS[2], now + ttl, ARGV[4])
  keep(KEYS[2], ttl)
end
return {0, 0}`);

/**
 * One more connection for one token subject. KEYS: the connections key, the marker. ARGV: max
 * connections, lease member, lease ms, rebuild window ms. Returns {0, 0} (admitted, the lease
 * added), {1, 0} (too many connections) or {3, ms left} (being rebuilt: nothing was decided).
 */
export const HOLD_SUBJECT = script(`${NOW}
${KEEP}
${REBUILDING}
local left = rebuilding(KEYS[2], tonumber(ARGV[4]))
if left > 0 then return {3, left} end
${openLeases('KEYS[1]')}
if open >= tonumber(ARGV[1]) then return {1, 0} end
local ttl = tonumber(ARGV[3])
redis.call('ZADD', KEYS[1], now + ttl, ARGV[2])
keep(KEYS[1], ttl)
return {0, 0}`);

/**
 * Extends leases this gateway holds, adding back any Redis lost (a restart without persistence, or
 * an outage longer than the lease), for several keys at once. KEYS: connection keys. ARGV: lease
 * ms, then for each key the number of its members and the members. A key Redis cannot use (of
 * another type) is skipped: the answer is how many were.
 */
export const REFRESH_LEASES = script(`${NOW}
${KEEP}
local ttl = tonumber(ARGV[1])
local at = 2
local skipped = 0
for i = 1, #KEYS do
  local count = tonumber(ARGV[at])
  local kind = redis.call('TYPE', KEYS[i]).ok
  if kind == 'zset' or kind == 'none' then
    for j = 1, count do redis.call('ZADD', KEYS[i], now + ttl, ARGV[at + j]) end
    keep(KEYS[i], ttl)
  else
    skipped = skipped + 1
  end
  at = at + count + 1
end
return skipped`);

/**
 * Takes leases given back out of several keys at once. KEYS: connection keys. ARGV: for each key
 * the number of its members and the members. Keys of another type are skipped.
 */
export const REMOVE_LEASES = script(`local at = 1
for i = 1, #KEYS do
  local count = tonumber(ARGV[at])
  if redis.call('TYPE', KEYS[i]).ok == 'zset' then
    for j = 1, count do redis.call('ZREM', KEYS[i], ARGV[at + j]) end
  end
  at = at + count + 1
end
return 0`);

/** KEYS and ARGV of a batch of keys with their members, for REFRESH_LEASES and REMOVE_LEASES. */
export function batchArguments(batch: readonly (readonly [string, readonly string[]])[]): {
  keys: string[];
  args: string[];
} {
  const keys: string[] = [];
  const args: string[] = [];
  for (const [key, members] of batch) {
    keys.push(key);
    args.push(String(members.length), ...members);
  }
  return { keys, args };
}

/** Redis's answer that it is rebuilding its counts: nothing was decided for this many ms more. */
export interface Rebuilding {
  readonly rebuildingMs: number;
}

/** What a decision script's answer means: admitted (undefined), refused, or not decided. */
export type Refusal = (reply: unknown) => Rejection | Rebuilding | undefined;

/** The outcome and milliseconds of an answer {outcome, ms}. */
function outcomeOf(reply: unknown): [number, number] {
  if (!Array.isArray(reply) || reply.length !== 2) throw new UnexpectedAnswer(reply);
  return [Number(reply[0]), Number(reply[1])];
}

const TOO_MANY = (code: 'CLIENT_CONNECTIONS_EXCEEDED' | 'SUBJECT_CONNECTIONS_EXCEEDED'): Rejection => ({
  code,
  headers: [['Retry-After', '1']],
});

/** The refusal an ADMIT_CLIENT answer means, if any. */
export const clientRefusal: Refusal = (reply) => {
  const [outcome, ms] = outcomeOf(reply);
  if (outcome === 0) return undefined;
  if (outcome === 1) return TOO_MANY('CLIENT_CONNECTIONS_EXCEEDED');
  if (outcome === 2) {
    const seconds = Math.max(1, Math.ceil(ms / 1000));
    return { code: 'HANDSHAKE_RATE_LIMITED', headers: [['Retry-After', String(seconds)]] };
  }
  if (outcome === 3) return { rebuildingMs: ms };
  throw new UnexpectedAnswer(reply);
};

/** The refusal a HOLD_SUBJECT answer means, if any. */
export const subjectRefusal: Refusal = (reply) => {
  const [outcome, ms] = outcomeOf(reply);
  if (outcome === 0) return undefined;
  if (outcome === 1) return TOO_MANY('SUBJECT_CONNECTIONS_EXCEEDED');
  if (outcome === 3) return { rebuildingMs: ms };
  throw new UnexpectedAnswer(reply);
};
