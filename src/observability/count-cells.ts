/**
 * Running counts by label set, kept as plain numbers where they change on every handshake or
 * tunnel, and handed to prom-client only when metrics are collected: a counter gets what was
 * counted since the last collection, a gauge the current value. The hot path then builds no
 * label object and hashes no label set (prom-client does both on every call); a cell is found by
 * one Map lookup, and a tunnel keeps its cells rather than labels.
 */
import type { Counter, Gauge } from 'prom-client';

/** One label set's running count. */
export interface CountCell {
  value: number;
}

interface Entry {
  readonly labels: Readonly<Record<string, string>>;
  readonly cell: CountCell;
  /** What a counter has been given of `cell.value` so far. */
  added: number;
}

export class CountCells {
  readonly #entries = new Map<string, Entry>();

  /** The cell of the label set `key` names; `labels` makes that set the first time only. */
  cell(key: string, labels: () => Readonly<Record<string, string>>): CountCell {
    let entry = this.#entries.get(key);
    if (entry === undefined) {
      entry = { labels: labels(), cell: { value: 0 }, added: 0 };
      this.#entries.set(key, entry);
    }
    return entry.cell;
  }

  /** Adds to `counter` what each cell counted since the last call. */
  addTo(counter: Counter<string>): void {
    for (const entry of this.#entries.values()) {
      const increase = entry.cell.value - entry.added;
      if (increase > 0) counter.inc(entry.labels, increase);
      entry.added = entry.cell.value;
    }
  }

  /** Sets `gauge` to each cell's value. */
  setOn(gauge: Gauge<string>): void {
    for (const entry of this.#entries.values()) gauge.set(entry.labels, entry.cell.value);
  }
}
