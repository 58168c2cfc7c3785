/**
 * Prometheus histograms observed on every handshake and every tunnel's end, kept as one cell of
 * plain numbers per label set (bucket counts, sum, count) and registered in the prom-client
 * registry as metrics of their own, read when metrics are collected. prom-client's Histogram
 * validates and hashes the label set and makes a closure on every observation; a cell is found
 * by one Map lookup on its label value and observing is a bucket search and three additions.
 * What a scrape (or a worker's report to the fleet) sees is what prom-client's histogram gives:
 * cumulative `_bucket` series with `le`, `_sum` and `_count`, summed across workers.
 */
import type { Histogram, Registry } from 'prom-client';

/** One label set's observations. */
export interface HistogramCell {
  observe(value: number): void;
}

class Cell implements HistogramCell {
  readonly labels: Readonly<Record<string, string>>;
  /** Observations per bucket (not cumulative); the last slot holds those above every bound. */
  readonly counts: Float64Array;
  readonly #bounds: readonly number[];
  sum = 0;
  count = 0;

  constructor(labels: Readonly<Record<string, string>>, bounds: readonly number[]) {
    this.labels = labels;
    this.#bounds = bounds;
    this.counts = new Float64Array(bounds.length + 1);
  }

  observe(value: number): void {
    if (!Number.isFinite(value)) return;
    const bounds = this.#bounds;
    let slot = 0;
    while (slot < bounds.length && value > (bounds[slot] ?? 0)) slot++;
    this.counts[slot] = (this.counts[slot] ?? 0) + 1;
    this.sum += value;
    this.count++;
  }
}

interface Sample {
  readonly value: number;
  readonly labels: Readonly<Record<string, string | number>>;
  readonly metricName: string;
}

export interface CellHistogramOptions {
  readonly name: string;
  readonly help: string;
  /** The one label the series are split by (a route, a pool). */
  readonly labelName: string;
  /** Upper bounds, ascending. */
  readonly buckets: readonly number[];
  readonly registry: Registry;
}

/** A histogram with one label, observed through cells; prom-client's registry reads it. */
export class CellHistogram {
  readonly name: string;
  readonly help: string;
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  /** As on prom-client's metrics: the names of the labels the series are split by. */
  readonly labelNames: readonly string[];
  readonly #labelName: string;
  readonly #bounds: readonly number[];
  readonly #cells = new Map<string, Cell>();

  constructor(options: CellHistogramOptions) {
    this.name = options.name;
    this.help = options.help;
    this.#labelName = options.labelName;
    this.labelNames = [options.labelName];
    this.#bounds = [...options.buckets];
    // The registry needs only name, help, type, aggregator, get() and reset(), which this has;
    // its declared parameter type lists prom-client's own classes.
    options.registry.registerMetric(this as unknown as Histogram);
  }

  /** The cell of the series whose label is `value`. */
  cell(value: string): HistogramCell {
    let cell = this.#cells.get(value);
    if (cell === undefined) {
      cell = new Cell({ [this.#labelName]: value }, this.#bounds);
      this.#cells.set(value, cell);
    }
    return cell;
  }

  /** The series as prom-client's registry formats them (and a fleet supervisor sums them). */
  async get(): Promise<{
    name: string;
    help: string;
    type: string;
    aggregator: string;
    values: Sample[];
  }> {
    const values: Sample[] = [];
    const bucket = `${this.name}_bucket`;
    for (const cell of this.#cells.values()) {
      let cumulative = 0;
      for (let i = 0; i < this.#bounds.length; i++) {
        cumulative += cell.counts[i] ?? 0;
        values.push({
          value: cumulative,
          labels: { le: this.#bounds[i] ?? 0, ...cell.labels },
          metricName: bucket,
        });
      }
      values.push({ value: cell.count, labels: { le: '+Inf', ...cell.labels }, metricName: bucket });
      values.push({ value: cell.sum, labels: cell.labels, metricName: `${this.name}_sum` });
      values.push({ value: cell.count, labels: cell.labels, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  /** Forgets every observation (the registry's resetMetrics). */
  reset(): void {
    this.#cells.clear();
  }
}
