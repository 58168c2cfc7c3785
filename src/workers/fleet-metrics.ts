/**
 * `/metrics` of a fleet: every worker's metrics summed into one exposition (prom-client's cluster
 * aggregation: counters, histograms and most gauges add up; a few gauges say how: the loaded
 * configuration, certificate expiry, backend health take the max or min instead), with the
 * supervisor's own series: workers running, restarts, and configuration reloads of the fleet
 * (counted once for the fleet, not once per worker).
 */
import { AggregatorRegistry, Counter, Gauge, Registry } from 'prom-client';
import { configReloadsCounter } from '../observability/metrics.ts';
import type { WorkerMetrics } from './messages.ts';

export class FleetMetrics {
  readonly registry = new Registry();

  readonly workers = new Gauge({
    name: 'wsgate_workers',
    help: 'Worker processes by state (running: serving; starting: forked, not serving yet).',
    labelNames: ['state'] as const,
    registers: [this.registry],
  });

  readonly restarts = new Counter({
    name: 'wsgate_worker_restarts_total',
    help: 'Workers that exited while the fleet was running and were started again (after a backoff).',
    registers: [this.registry],
  });

  readonly configReloads = configReloadsCounter(this.registry);

  get contentType(): string {
    return this.registry.contentType;
  }

  /** The fleet's exposition from each worker's metrics. */
  async render(workers: readonly WorkerMetrics[]): Promise<string> {
    const summed = AggregatorRegistry.aggregate<Registry['contentType']>([...workers]);
    for (const own of await this.registry.getMetricsAsJSON()) summed.removeSingleMetric(own.name);
    return Registry.merge([summed, this.registry]).metrics();
  }
}
