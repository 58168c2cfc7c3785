/**
 * The limit store `admission.store` names: the memory store, or the Redis store with its
 * connection.
 */
import type { AdmissionSettings } from '../config/admission-schema.ts';
import type { Logger } from '../observability/logger.ts';
import type { GatewayMetrics } from '../observability/metrics.ts';
import type { Clock } from '../tunnel/sweeper.ts';
import type { LimitStore } from './limit-store.ts';
import { MemoryLimits } from './memory-store.ts';
import { connectRedis } from './redis-connection.ts';
import { RedisLimits } from './redis-store.ts';

export interface LimitStoreDeps {
  readonly clock: Clock;
  readonly log: Logger;
  readonly metrics: GatewayMetrics;
}

export function createLimitStore(settings: AdmissionSettings, deps: LimitStoreDeps): LimitStore {
  if (settings.store === 'memory') return new MemoryLimits(settings, deps.clock);
  return new RedisLimits(settings, settings.store.redis, {
    ...deps,
    log: deps.log.child({ component: 'limit-store' }),
    connection: connectRedis(settings.store.redis),
  });
}
