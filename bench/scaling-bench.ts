/**
 * How cost grows with load, wsgate (as shipped: keepalive pings, the 16 MiB message limit) beside
 * nginx in one run: proxy CPU per 64 B message at several numbers of active connections, RSS per
 * idle connection at several counts, and handshakes per second (with proxy CPU per handshake and
 * the share of a core used) as handshakes in flight grow until the proxy's core saturates. Every
 * measurement starts a fresh proxy. Counts that do not fit this process's open-file limit are
 * reduced and the report says so. Markdown on stdout (progress on stderr), and
 * bench/results/scaling-latest.md and .json.
 *
 *   bash bench/run.sh --scaling [--quick] [--rounds 3] [--active 100,1000,9000] [--idle 1000,5000,9000]
 *                               [--in-flight 1,10,50,200] [--targets wsgate,nginx]
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { benchMain, integerList as list, log } from './bench-main.ts';
import { handshakeLoad } from './handshake-load.ts';
import { type Failures, failureTotal, openIdle, relay } from './load-client.ts';
import {
  type CpuSample,
  clockTicksPerSecond,
  cpuSample,
  openFileLimit,
  processTree,
  rssKiB,
} from './proc.ts';
import {
  HOST,
  nginxTarget,
  type ProxyTarget,
  type Registry,
  type RunningProxy,
  startBackend,
  wsgateTarget,
} from './targets.ts';

const BENCH_DIR = dirname(fileURLToPath(import.meta.url));
const RESULTS_DIR = join(BENCH_DIR, 'results');
/** Descriptors kept aside for listeners, logs and the runtime. */
const FD_RESERVE = 200;

interface Settings {
  readonly rounds: number;
  readonly active: readonly number[];
  readonly idle: readonly number[];
  readonly inFlight: readonly number[];
  readonly targets: readonly string[];
  readonly windowMs: number;
  readonly pin: boolean;
}

function settingsFrom(args: string[]): Settings {
  const { values } = parseArgs({
    args,
    options: {
      scaling: { type: 'boolean', default: true },
      quick: { type: 'boolean', default: false },
      rounds: { type: 'string' },
      active: { type: 'string' },
      idle: { type: 'string' },
      'in-flight': { type: 'string' },
      targets: { type: 'string', default: 'wsgate,nginx' },
      'no-pin': { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    process.stderr.write(
      'usage: bash bench/run.sh --scaling [--quick] [--rounds N] [--active 100,1000,9000] [--idle 1000,5000,9000]\n' +
        '         [--in-flight 1,10,50,200] [--targets wsgate,nginx] [--no-pin]\n',
    );
    process.exit(0);
  }
  const targets = values.targets.split(',').map((name) => name.trim());
  for (const name of targets) {
    if (name !== 'wsgate' && name !== 'nginx') {
      process.stderr.write(`unknown target "${name}" (wsgate, nginx)\n`);
      process.exit(2);
    }
  }
  return {
    rounds: list(values.rounds ?? (values.quick ? '1' : '3'), 'rounds', 20)[0] ?? 1,
    active: list(values.active ?? (values.quick ? '100,1000' : '100,1000,9000'), 'active', 100_000),
    idle: list(values.idle ?? (values.quick ? '1000' : '1000,5000,9000'), 'idle', 100_000),
    inFlight: list(values['in-flight'] ?? (values.quick ? '1,50' : '1,10,50,200'), 'in-flight', 1000),
    targets,
    windowMs: values.quick ? 1500 : 3000,
    pin: !values['no-pin'],
  };
}

interface Row {
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
}

class ScalingBench {
  readonly #settings: Settings;
  readonly #registry: Registry;
  readonly #workDir: string;
  readonly #clkTck = clockTicksPerSecond();
  readonly #rows: Row[] = [];
  readonly #notes: string[] = [];
  #backendPort = 0;

  constructor(settings: Settings, registry: Registry, workDir: string) {
    this.#settings = settings;
    this.#registry = registry;
    this.#workDir = workDir;
  }

  /** The counts that fit: a proxy holds two descriptors per connection. */
  #fitting(counts: readonly number[], what: string): number[] {
    const limit = openFileLimit();
    const fit = Math.floor((limit - FD_RESERVE) / 2);
    const kept = counts.filter((count) => count <= fit);
    const dropped = counts.filter((count) => count > fit);
    if (dropped.length > 0) {
      this.#notes.push(
        `${what}: ${dropped.join(', ')} left out: the open-file limit is ${limit} ` +
          `(a proxy holds two descriptors per connection, so at most ${fit} fit here).`,
      );
    }
    return kept;
  }

  #cpuMs(start: CpuSample, end: CpuSample): number {
    return ((end.ticks - start.ticks) / this.#clkTck) * 1000;
  }

  async #withProxy(target: ProxyTarget, use: (proxy: RunningProxy, pids: number[]) => Promise<void>) {
    if (target.start === undefined) return;
    const proxy = await target.start(this.#registry, this.#workDir, this.#backendPort);
    try {
      await sleep(300);
      await use(proxy, processTree(proxy.managed.pid));
    } finally {
      await this.#registry.stop(proxy.managed);
    }
  }

  async #active(target: ProxyTarget, connections: number): Promise<void> {
    await this.#withProxy(target, async (proxy, pids) => {
      const result = await relay({
        host: HOST,
        port: proxy.port,
        connections,
        openConcurrency: 200,
        payloadBytes: 64,
        warmupMs: 1000,
        windowMs: this.#settings.windowMs,
        maxWindowMessages: 3_000_000,
        sample: () => cpuSample(pids),
      });
      const cpuMs = result.start && result.end ? this.#cpuMs(result.start, result.end) : undefined;
      const failures = { ...result.failures };
      if (result.connections < connections)
        failures['missing-connections'] = connections - result.connections;
      this.#push({
        target: target.name,
        measure: 'active',
        count: connections,
        perUnit: cpuMs !== undefined && result.messages > 0 ? (cpuMs * 1000) / result.messages : undefined,
        rate: result.seconds > 0 ? result.messages / result.seconds : undefined,
        proxyCores: cpuMs !== undefined && result.seconds > 0 ? cpuMs / 1000 / result.seconds : undefined,
        failures,
      });
    });
  }

  async #idle(target: ProxyTarget, connections: number): Promise<void> {
    await this.#withProxy(target, async (proxy, pids) => {
      const before = rssKiB(pids);
      const idle = await openIdle({
        host: HOST,
        port: proxy.port,
        connections,
        concurrency: 200,
        payloadBytes: 32,
        openTimeoutMs: 60_000,
      });
      await sleep(3000); // let the proxy settle, and ping every connection once
      const after = rssKiB(processTree(proxy.managed.pid));
      await idle.close();
      const failures = { ...idle.failures };
      if (idle.opened < connections) failures['not-open-at-end'] = connections - idle.opened;
      this.#push({
        target: target.name,
        measure: 'idle',
        count: connections,
        perUnit: idle.opened > 0 ? (after - before) / idle.opened : undefined,
        rate: undefined,
        proxyCores: undefined,
        failures,
      });
    });
  }

  async #handshakes(target: ProxyTarget): Promise<void> {
    await this.#withProxy(target, async (proxy, pids) => {
      for (const inFlight of this.#settings.inFlight) {
        const result = await handshakeLoad({
          host: HOST,
          port: proxy.port,
          concurrency: inFlight,
          warmupMs: 500,
          windowMs: this.#settings.windowMs,
          maxHandshakes: 200_000,
          sample: () => cpuSample(pids),
        });
        const cpuMs = this.#cpuMs(result.start, result.end);
        this.#push({
          target: target.name,
          measure: 'handshakes',
          count: inFlight,
          perUnit: result.handshakes > 0 ? (cpuMs / result.handshakes) * 1000 : undefined,
          rate: result.seconds > 0 ? result.handshakes / result.seconds : undefined,
          proxyCores: result.seconds > 0 ? cpuMs / 1000 / result.seconds : undefined,
          failures: result.failures,
        });
      }
    });
  }

  #push(row: Row): void {
    this.#rows.push(row);
    const unit =
      row.measure === 'active' ? 'CPU µs/msg' : row.measure === 'idle' ? 'KiB/conn' : 'CPU ms/1k hs';
    const rate = row.rate === undefined ? '' : `, ${Math.round(row.rate)}/s`;
    const cores = row.proxyCores === undefined ? '' : `, proxy ${row.proxyCores.toFixed(2)} cores`;
    const bad = failureTotal(row.failures) > 0 ? ` INVALID ${JSON.stringify(row.failures)}` : '';
    log(
      `${row.target} ${row.measure} ${row.count}: ${row.perUnit?.toFixed(2) ?? '-'} ${unit}${rate}${cores}${bad}`,
    );
  }

  async run(): Promise<number> {
    const s = this.#settings;
    const backend = await startBackend(this.#registry, BENCH_DIR, this.#workDir);
    this.#backendPort = backend.port;
    const targets = s.targets.map((name) =>
      name === 'nginx' ? nginxTarget() : wsgateTarget(dirname(BENCH_DIR), process.execPath, 'defaults'),
    );
    for (const target of targets)
      if (target.skip) this.#notes.push(`${target.name} skipped: ${target.skip}.`);
    const runnable = targets.filter((target) => target.skip === undefined);
    const active = this.#fitting(s.active, 'Active connections');
    const idle = this.#fitting(s.idle, 'Idle connections');
    for (let round = 0; round < s.rounds; round++) {
      // The order of the targets rotates per round, so a noisy spell hits several of them.
      const order = runnable.map((_, i) => runnable[(i + round) % runnable.length] as ProxyTarget);
      log(`round ${round + 1}/${s.rounds}`);
      for (const count of active) for (const target of order) await this.#active(target, count);
      for (const count of idle) for (const target of order) await this.#idle(target, count);
      for (const target of order) await this.#handshakes(target);
    }
    const markdown = scalingReport(this.#rows, runnable, this.#notes);
    process.stdout.write(`${markdown}\n`);
    mkdirSync(RESULTS_DIR, { recursive: true });
    writeFileSync(join(RESULTS_DIR, 'scaling-latest.md'), `${markdown}\n`);
    writeFileSync(
      join(RESULTS_DIR, 'scaling-latest.json'),
      `${JSON.stringify({ settings: s, rows: this.#rows, notes: this.#notes }, null, 2)}\n`,
    );
    return this.#rows.some((row) => failureTotal(row.failures) > 0 || row.perUnit === undefined) ? 1 : 0;
  }
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

/** One table per measure: a row per count, a column per target. */
export function scalingReport(
  rows: readonly Row[],
  targets: readonly ProxyTarget[],
  notes: readonly string[],
): string {
  const names = targets.map((target) => target.name);
  const lines = ['# wsgate scaling', '', 'Medians over rounds; ±x% is (max − min) / median.', ''];
  const sections = [
    ['active', 'Proxy CPU µs per 64 B message (messages/s, proxy cores used), by active connections', 2],
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
      lines.push(`| ${count.toLocaleString('en-US')} | ${cells.join(' | ')} |`);
    }
    lines.push('');
  }
  lines.push(...targets.map((target) => `- ${target.name}: ${target.version}`));
  lines.push(...notes.map((note) => `- ${note}`));
  return lines.join('\n');
}

const settings = settingsFrom(process.argv.slice(2));
void benchMain(settings.pin, (registry, workDir) => new ScalingBench(settings, registry, workDir).run());
