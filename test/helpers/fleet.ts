/**
 * Gateways that count their limits in one Redis, for the fleet-wide limit tests: a gateway that
 * trusts X-Forwarded-For from 127.0.0.1 (so a test can speak for any client address), with a
 * route `/tokens` that asks for an HS256 token signed with FLEET_SECRET; and the leases Redis
 * holds.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { startGateway, type TestGateway } from './gateway.ts';
import type { TestRedis } from './redis.ts';

export const FLEET_SECRET = new TextEncoder().encode('a shared secret of at least 32 bytes for HS256');

/** A gateway counting `admission` in the Redis store `redis` (its settings, `url` at least). */
export async function fleetGateway(
  t: TestContext,
  backendUrl: string,
  redis: Record<string, unknown>,
  admission: Record<string, unknown>,
  logLevel = 'warn',
): Promise<TestGateway> {
  const dir = mkdtempSync(join(tmpdir(), 'wsgate-secret-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'jwt.secret'), FLEET_SECRET);
  return startGateway(t, {
    log: { level: logLevel },
    admission: { ...admission, store: { redis } },
    forwarding: { trustedProxies: ['127.0.0.1'] },
    keySets: { shared: { secretFile: join(dir, 'jwt.secret') } },
    routes: {
      app: { pool: 'app' },
      tokens: { pool: 'app', path: '/tokens', auth: { keySet: 'shared', algorithms: ['HS256'] } },
    },
    pools: { app: { backends: [backendUrl] } },
  });
}

/** Two gateways on one Redis with the same settings (started one after the other). */
export async function fleetOfTwo(
  ...args: Parameters<typeof fleetGateway>
): Promise<[TestGateway, TestGateway]> {
  return [await fleetGateway(...args), await fleetGateway(...args)];
}

/** Leases Redis holds in the connection keys matching `pattern`. */
export async function leases(redis: TestRedis, pattern = 'wsgate:*'): Promise<number> {
  const keys = (await redis.command(['KEYS', pattern])) as string[];
  let total = 0;
  for (const key of keys.filter((name) => name.endsWith(':connections')))
    total += Number(await redis.command(['ZCARD', key]));
  return total;
}
