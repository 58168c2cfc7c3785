/**
 * The scaling benchmark's report (bench/scaling-bench.ts): its rows and the Markdown tables made
 * of them, one per measure, medians over rounds with their spread.
 */
import { type Failures, failureTotal } from './load-client.ts';
import type { ProxyTarget } from './targets.ts';

export type Mode = 'closed' | 'paced';

export interface Row {
  readonly target: string;
  readonly measure: 'active' | 'idle' | 'handshakes';
  /** Active connections, idle connections, or handshakes in flight. */
  readonly count: number;
  /** CPU µs per message, KiB per idle connection, or CPU ms per 1,000 handshakes. */
  readonly perUnit: number | undefined;
  /** Messages/s, or handshakes/s (undefined for idle). */
  readonly rate: number | undefined;
  /** Share of one core the proxy used over the window. */
  readonly proxyCores: number | undefined;
  readonly failures: Failures;
  /** Active: closed loop or paced, and the paced target rate (messages/s, all connections). */
  readonly mode?: Mode;
  readonly targetRate?: number | undefined;
  /** Active: TCP segments sent machine-wide (/proc/net/snmp OutSegs) per relayed message. */
  readonly segmentsPerMessage?: number | undefined;
  /** Active: segments/s sent machine-wide in half a second before the connections opened. */
  readonly backgroundSegmentsPerSecond?: number | undefined;
  /** Active: delayed ACKs machine-wide (/proc/net/netstat TcpExt DelayedACKs) per 1,000 messages. */
  readonly delayedAcksPer1k?: number | undefined;
  /** Active, paced: share of the sends due in the window skipped because the echo was still out. */
  readonly lateShare?: number | undefined;
  /** Idle: the proxy's worker processes (more than 1 when one could not hold the count). */
  readonly processes?: number;
}

function median(values: readonly number[]): number | undefined {
  const sorted = [...values].sort((a, b) => a - b);
  if (sorted.length === 0) return undefined;
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid] : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2;
}

function defined(values: readonly (number | undefined)[]): number[] {
  return values.filter((value): value is number => value !== undefined);
}

/** The median over rounds, with the spread ((max - min) / median) when there are several. */
function cell(rows: readonly Row[], digits: number, withRate: boolean): string {
  const units = defined(rows.map((row) => row.perUnit));
  const perUnit = median(units);
  if (perUnit === undefined) return '—';
  const range = Math.max(...units) - Math.min(...units);
  const spread = units.length > 1 && perUnit > 0 ? ` ±${Math.round((range / perUnit) * 100)}%` : '';
  const rate = median(defined(rows.map((row) => row.rate)));
  const cores = median(defined(rows.map((row) => row.proxyCores)));
  const extra =
    withRate && rate !== undefined && cores !== undefined
      ? ` (${Math.round(rate).toLocaleString('en-US')}/s, ${cores.toFixed(2)} cores)`
      : '';
  const bad = rows.some((row) => failureTotal(row.failures) > 0) ? ' INVALID' : '';
  return `${perUnit.toFixed(digits)}${spread}${extra}${bad}`;
}

/** Segments/s of other traffic before the window, per message of the window's rate. */
export function background(row: Row): number | undefined {
  const perSecond = row.backgroundSegmentsPerSecond;
  return perSecond !== undefined && row.rate ? perSecond / row.rate : undefined;
}

function fixed(value: number | undefined, digits: number): string {
  return value === undefined ? '—' : value.toFixed(digits);
}

/** The active measurements: a row per load, count and target, a column per figure. */
function activeTable(rows: readonly Row[], names: readonly string[]): string[] {
  const active = rows.filter((row) => row.measure === 'active');
  if (active.length === 0) return [];
  const lines = [
    '## Proxy CPU per 64 B message, by active connections',
    '',
    'Closed loop: every connection ping-pongs one message. Paced: messages/s in all (the target in the',
    'first column), each connection sending one message every connections / rate seconds, the',
    'connections staggered so the sends are spread evenly; a send that falls due while the',
    "connection's echo is still out is skipped and counted late. Segments per message: TCP segments",
    'sent machine-wide over the window (`Tcp: OutSegs`, /proc/net/snmp; data segments of all four',
    'legs, pure ACKs, and any other TCP traffic on the machine) per relayed message. Delayed ACKs:',
    'machine-wide too (`TcpExt: DelayedACKs`, /proc/net/netstat), per 1,000 messages. Background:',
    'the segments/s sent machine-wide in half a second before the connections opened, divided by',
    'the messages/s, an estimate of how much of the segments per message is other traffic.',
    '',
    '| load | connections | proxy | CPU µs/msg | messages/s | proxy cores | segments/msg | background seg/msg | delayed ACKs/1k msgs | late sends |',
    '|---|---:|---|---:|---:|---:|---:|---:|---:|---:|',
  ];
  let behind = false;
  const loads = [...new Set(active.map((row) => `${row.mode ?? 'closed'}:${row.targetRate ?? 0}`))];
  for (const load of loads) {
    const ofLoad = active.filter((row) => `${row.mode ?? 'closed'}:${row.targetRate ?? 0}` === load);
    const rate = ofLoad[0]?.targetRate;
    const label = rate === undefined ? 'closed loop' : `paced ${rate.toLocaleString('en-US')}/s`;
    for (const count of [...new Set(ofLoad.map((row) => row.count))]) {
      for (const name of names) {
        const cellRows = ofLoad.filter((row) => row.count === count && row.target === name);
        if (cellRows.length === 0) continue;
        const of = (pick: (row: Row) => number | undefined): number | undefined =>
          median(defined(cellRows.map(pick)));
        const figure = (pick: (row: Row) => number | undefined, digits: number): string =>
          fixed(of(pick), digits);
        const messagesPerSecond = of((row) => row.rate);
        const late = of((row) => row.lateShare);
        const figures = [
          cell(cellRows, 2, false),
          messagesPerSecond === undefined ? '—' : Math.round(messagesPerSecond).toLocaleString('en-US'),
          figure((row) => row.proxyCores, 2),
          figure((row) => row.segmentsPerMessage, 2),
          figure(background, 2),
          figure((row) => row.delayedAcksPer1k, 1),
          late === undefined ? '—' : `${(late * 100).toFixed(1)} %`,
        ];
        lines.push(`| ${label} | ${count.toLocaleString('en-US')} | ${name} | ${figures.join(' | ')} |`);
        if (late !== undefined && late > 0.01) behind = true;
      }
    }
  }
  lines.push('');
  if (behind)
    lines.push(
      'More than 1 % of the paced sends were late somewhere: the echoes took longer than the interval',
      'between sends (the proxy, the load client or the machine could not keep the rate), so those',
      'rows are not at the target rate; a lower `--paced` rate compares like with like.',
      '',
    );
  return lines;
}

/** One table per measure: a row per count, a column per target (active: see `activeTable`). */
export function scalingReport(
  rows: readonly Row[],
  targets: readonly ProxyTarget[],
  notes: readonly string[],
): string {
  const names = targets.map((target) => target.name);
  const lines = ['# wsgate scaling', '', 'Medians over rounds; ±x% is (max − min) / median.', ''];
  lines.push(...activeTable(rows, names));
  const sections = [
    ['idle', 'RSS KiB per idle connection, by idle connections', 2],
    [
      'handshakes',
      'Proxy CPU ms per 1,000 handshakes (handshakes/s, proxy cores used), by handshakes in flight',
      0,
    ],
  ] as const;
  for (const [measure, title, digits] of sections) {
    const counts = [...new Set(rows.filter((row) => row.measure === measure).map((row) => row.count))];
    if (counts.length === 0) continue;
    lines.push(
      `## ${title}`,
      '',
      `| ${measure === 'handshakes' ? 'in flight' : 'connections'} | ${names.join(' | ')} |`,
    );
    lines.push(`|---:|${names.map(() => '---:').join('|')}|`);
    for (const count of counts) {
      const cells = names.map((name) =>
        cell(
          rows.filter((row) => row.measure === measure && row.count === count && row.target === name),
          digits,
          measure !== 'idle',
        ),
      );
      const processes = Math.max(
        1,
        ...rows
          .filter((row) => row.measure === measure && row.count === count)
          .map((row) => row.processes ?? 1),
      );
      const shown = `${count.toLocaleString('en-US')}${processes > 1 ? ` (${processes} processes)` : ''}`;
      lines.push(`| ${shown} | ${cells.join(' | ')} |`);
    }
    lines.push('');
  }
  lines.push(...targets.map((target) => `- ${target.name}: ${target.version}`));
  lines.push(...notes.map((note) => `- ${note}`));
  return lines.join('\n');
}
