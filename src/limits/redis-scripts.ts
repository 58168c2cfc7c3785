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

/** Drops the expired leases of KEYS[n] and counts the rest: `open`. */
const openLeases = (key: string) => `redis.call('ZREMRANGEBYSCORE', ${key}, '-inf', now)
local open = redis.call('ZCARD', ${key})`;

/** Adds lease `member` to `key` until now + ttl, and keeps the key until then. */
const addLease = (
  key: string,
  member: string,
  ttl: string,
) => `redis.call('ZADD', ${key}, now + ${ttl}, ${member})
redis.call('PEXPIRE', ${key}, ${ttl})`;

/**
 * One more upgrade from one client address. KEYS: the rate key, the connections key.
 * ARGV: max connections (0: no cap), interval in ms (0: no rate), burst, lease member, lease ms.
 * Returns {0, 0} (admitted, the lease added), {1, 0} (too many connections) or {2, wait ms}.
 */
export const ADMIT_CLIENT = script(`${NOW}
local max = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
if max > 0 then
  ${openLeases('KEYS[2]')}
  if open >= max then return {1, 0} end
end
if interval > 0 then
  local stored = redis.call('GET', KEYS[1])
  local tat = stored and tonumber(stored) or now
  if tat < now then tat = now end
  local wait = tat + interval - interval * tonumber(ARGV[3]) - now
  if wait > 0 then return {2, math.ceil(wait)} end
  redis.call('SET', KEYS[1], tostring(tat + interval), 'PX', math.ceil(tat + interval - now))
end
if max > 0 then
  ${addLease('KEYS[2]', 'ARGV[4]', 'tonumber(ARGV[5])')}
end
return {0, 0}`);

/**
 * One more connection for one token subject. KEYS: the connections key. ARGV: max connections,
 * lease member, lease ms. Returns 0 (admitted, the lease added) or 1 (too many connections).
 */
export const HOLD_SUBJECT = script(`${NOW}
${openLeases('KEYS[1]')}
if open >= tonumber(ARGV[1]) then return 1 end
${addLease('KEYS[1]', 'ARGV[2]', 'tonumber(ARGV[3])')}
return 0`);

/**
 * Extends leases this gateway holds, adding back any Redis lost (a restart without persistence, or
 * an outage longer than the lease). KEYS: the connections key. ARGV: lease ms, then the members.
 */
export const REFRESH_LEASES = script(`${NOW}
local ttl = tonumber(ARGV[1])
for i = 2, #ARGV do
  redis.call('ZADD', KEYS[1], now + ttl, ARGV[i])
end
redis.call('PEXPIRE', KEYS[1], ttl)
return #ARGV - 1`);

export type Refusal = (reply: unknown) => Rejection | undefined;

/** The refusal an ADMIT_CLIENT answer means, if any. */
export const clientRefusal: Refusal = (reply) => {
  const [outcome, waitMs] = Array.isArray(reply) ? reply.map(Number) : [Number.NaN, 0];
  if (outcome === 0) return undefined;
  if (outcome === 1) return { code: 'CLIENT_CONNECTIONS_EXCEEDED', headers: [['Retry-After', '1']] };
  if (outcome === 2) {
    const seconds = Math.max(1, Math.ceil((waitMs ?? 0) / 1000));
    return { code: 'HANDSHAKE_RATE_LIMITED', headers: [['Retry-After', String(seconds)]] };
  }
  throw new UnexpectedAnswer(reply);
};

/** The refusal a HOLD_SUBJECT answer means, if any. */
export const subjectRefusal: Refusal = (reply) => {
  if (Number(reply) === 0) return undefined;
  if (Number(reply) === 1) return { code: 'SUBJECT_CONNECTIONS_EXCEEDED', headers: [['Retry-After', '1']] };
  throw new UnexpectedAnswer(reply);
};
