/**
 * The echo benchmark: WebSocket echo round trips through wsgate, side by side with a direct
 * connection to the echo backend and with nginx, in one run. For each target and message size,
 * N connections ping-pong one binary message each (warm-up, then a measured window bounded in
 * time and count); the figures are messages/s (and the ratios between targets), the proxy's CPU
 * time per 1,000 messages (utime + stime of its process tree, sampled at the exact start and end
 * of the window) and, on a fresh proxy, the RSS per idle connection. Rounds are interleaved with
 * a rotating order and summarised by their median. Prints a Markdown report on stdout (progress
 * on stderr) and writes bench/results/latest.md and latest.json.
 *
 *   bash bench/run.sh [--quick] [--rounds N] [--connections N] [--idle N]
 *                     [--targets direct,nginx,wsgate,wsgate-limits]
 *
 * run.sh raises the open-file limit and installs nginx if needed; this file can also be run
 * directly with the project's Node 24 (node_modules/.bin/node bench/echo-bench.ts).
 */
import { readFileSync } from 'node:fs';
import { cpus, release } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import {
  BENCH_DIR,
  benchMain,
  log,
  NPROC_AT_START,
  RESULTS_DIR,
  ROOT_DIR,
  saveResults,
} from './bench-main.ts';
import { type Failures, failureTotal, openIdle, type RelayResult, relay } from './load-client.ts';
import {
  type CpuSample,
  clockTicksPerSecond,
  cpuSample,
  type MachineSample,
  machineDelta,
  machineSample,
  openFileLimit,
  processTree,
  rssKiB,
} from './proc.ts';
import {
  directTarget,
  HOST,
  type Managed,
  nginxTarget,
  type ProxyTarget,
  type Registry,
  type RunningProxy,
  startBackend,
  wsgateTarget,
} from './targets.ts';

/** A window is disturbed when hypervisor steal or other processes exceed these. */
const DISTURBED_STEAL = 0.1;
const DISTURBED_OTHER_CORES = 0.25;
const MAX_REPEATS_PER_RUN = 2;

interface Settings {
  readonly rounds: number;
  readonly connections: number;
  readonly sizes: readonly number[];
  readonly warmupMs: number;
  readonly windowMs: number;
  readonly maxWindowMessages: number;
  readonly idleConnections: number;
  readonly idleConcurrency: number;
  /** Disturbed windows repeated at most this many times per benchmark. */
  readonly maxRepeats: number;
  readonly targets: readonly string[];
  readonly pin: boolean;
}

function parseSettings(): Settings {
  try {
    return settingsFrom(process.argv.slice(2));
  } catch (error) {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)} (try --help)\n`);
    process.exit(2);
  }
}

function settingsFrom(args: string[]): Settings {
  const { values } = parseArgs({
    args,
    options: {
      quick: { type: 'boolean', default: false },
      rounds: { type: 'string' },
      connections: { type: 'string', default: '50' },
      sizes: { type: 'string', default: '64,4096' },
      'warmup-ms': { type: 'string', default: '1000' },
      'window-ms': { type: 'string', default: '3000' },
      'max-messages': { type: 'string', default: '3000000' },
      idle: { type: 'string' },
      targets: { type: 'string', default: 'direct,nginx,wsgate,wsgate-limits' },
      'no-pin': { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    process.stderr.write(
      'usage: bash bench/run.sh [--quick] [--rounds N] [--connections N] [--sizes 64,4096]\n' +
        '         [--warmup-ms MS] [--window-ms MS] [--max-messages N] [--idle N (0: skip)]\n' +
        '         [--targets direct,nginx,wsgate,wsgate-limits] [--no-pin]\n',
    );
    process.exit(0);
  }
  const int = (text: string, name: string, min: number, max: number): number => {
    const value = Number(text);
    if (!Number.isInteger(value) || value < min || value > max) {
      process.stderr.write(`--${name} must be an integer in ${min}..${max}\n`);
      process.exit(2);
    }
    return value;
  };
  const targets = values.targets.split(',').map((name) => name.trim());
  for (const name of targets) {
    if (!['direct', 'nginx', 'wsgate', 'wsgate-limits'].includes(name)) {
      process.stderr.write(`unknown target "${name}" (direct, nginx, wsgate, wsgate-limits)\n`);
      process.exit(2);
    }
  }
  return {
    rounds: int(values.rounds ?? (values.quick ? '1' : '3'), 'rounds', 1, 20),
    connections: int(values.connections, 'connections', 1, 1000),
    sizes: values.sizes.split(',').map((size) => int(size.trim(), 'sizes', 1, 1024 * 1024)),
    warmupMs: int(values['warmup-ms'], 'warmup-ms', 0, 60_000),
    windowMs: int(values['window-ms'], 'window-ms', 100, 120_000),
    maxWindowMessages: int(values['max-messages'], 'max-messages', 1, 100_000_000),
    idleConnections: int(values.idle ?? (values.quick ? '1000' : '5000'), 'idle', 0, 50_000),
    idleConcurrency: 200,
    maxRepeats: values.quick ? 2 : 6,
    targets,
    pin: !values['no-pin'],
  };
}

/** Figures taken at the exact start and end of a measured window. */
interface WindowSample {
  readonly proxy: CpuSample | undefined;
  readonly backend: CpuSample;
  readonly selfMicros: number;
  readonly machine: MachineSample;
}

interface RelayRun {
  readonly target: string;
  readonly size: number;
  readonly round: number;
  readonly connections: number;
  readonly messages: number;
  readonly seconds: number;
  readonly messagesPerSecond: number;
  /** Proxy CPU (utime + stime) in ms per 1,000 messages; undefined for direct. */
  readonly proxyCpuMsPer1k: number | undefined;
  /** The same from schedstat nanoseconds (live threads only), as a cross-check. */
  readonly proxyCpuSchedMsPer1k: number | undefined;
  /** Proxy CPU as a share of one core over the window. */
  readonly proxyCpuShare: number | undefined;
  /** Load client + echo backend CPU as a share of one core (they share CPU 1). */
  readonly loadCpuShare: number;
  /** Hypervisor steal, worst CPU, as a share of the window. */
  readonly steal: number;
  /** CPU used by other processes (machine user+nice+system minus proxy and load side), in cores. */
  readonly otherCores: number;
  /** Steal above 10% or other processes above 0.25 cores: the window is repeated (bounded). */
  readonly disturbed: boolean;
  /** Disturbed attempts discarded before this one. */
  readonly repeats: number;
  readonly countBound: boolean;
  readonly failures: Failures;
  readonly valid: boolean;
}

interface IdleRun {
  readonly target: string;
  readonly requested: number;
  readonly opened: number;
  readonly openSeconds: number;
  readonly rssBeforeKiB: number;
  readonly rssAfterKiB: number;
  readonly perConnectionKiB: number | undefined;
  readonly processes: number;
  readonly failures: Failures;
  readonly valid: boolean;
}

interface Stat {
  readonly median: number;
  readonly min: number;
  readonly max: number;
  /** (max - min) / median, in percent. */
  readonly spreadPct: number;
  readonly runs: number;
}

function stat(values: readonly number[]): Stat | undefined {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  const median = sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
  const min = sorted[0]!;
  const max = sorted[sorted.length - 1]!;
  return {
    median,
    min,
    max,
    spreadPct: median === 0 ? 0 : ((max - min) / median) * 100,
    runs: sorted.length,
  };
}

function cpuModel(): string {
  try {
    const text = readFileSync('/proc/cpuinfo', 'utf8');
    return /^model name\s*:\s*(.+)$/m.exec(text)?.[1]?.trim() ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

const fmtInt = (value: number): string => Math.round(value).toLocaleString('en-US');
const fmtNum = (value: number, digits: number): string =>
  value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
const fmtSize = (bytes: number): string => (bytes % 1024 === 0 ? `${bytes / 1024} KiB` : `${bytes} B`);
const fmtPct = (share: number): string => `${Math.round(share * 100)}%`;

class Bench {
  private readonly settings: Settings;
  private readonly registry: Registry;
  private readonly workDir: string;
  private readonly clkTck = clockTicksPerSecond();
  private readonly notes: string[] = [];
  private readonly errors: string[] = [];
  readonly relayRuns: RelayRun[] = [];
  /** Disturbed windows that were repeated (kept in the JSON). */
  readonly discardedRuns: RelayRun[] = [];
  private repeatBudget: number;
  readonly idleRuns: IdleRun[] = [];
  private backend: { managed: Managed; port: number } | undefined;
  private readonly targets: ProxyTarget[] = [];

  constructor(settings: Settings, registry: Registry, workDir: string) {
    this.settings = settings;
    this.registry = registry;
    this.workDir = workDir;
    this.repeatBudget = settings.maxRepeats;
  }

  private sample(proxyPids: readonly number[] | undefined, backendPid: number): WindowSample {
    const usage = process.cpuUsage();
    return {
      proxy: proxyPids === undefined ? undefined : cpuSample(proxyPids),
      backend: cpuSample([backendPid]),
      selfMicros: usage.user + usage.system,
      machine: machineSample(),
    };
  }

  async run(): Promise<number> {
    const s = this.settings;
    if (process.env.WSGATE_BENCH_NOTE) this.notes.push(process.env.WSGATE_BENCH_NOTE);
    if (!this.registry.pinning)
      this.notes.push('No CPU pinning (taskset missing, fewer than 2 CPUs, or --no-pin).');
    for (const name of s.targets) {
      const target =
        name === 'direct'
          ? directTarget
          : name === 'nginx'
            ? nginxTarget()
            : wsgateTarget(ROOT_DIR, process.execPath, name === 'wsgate-limits' ? 'on' : 'off');
      if (target.skip !== undefined) {
        this.notes.push(`${target.name} skipped: ${target.skip}.`);
        log(`skipping ${target.name}: ${target.skip}`);
      }
      this.targets.push(target);
    }
    const runnable = this.targets.filter((target) => target.skip === undefined);
    this.backend = await startBackend(this.registry, BENCH_DIR, this.workDir);
    log(`echo backend on ${HOST}:${this.backend.port} (pid ${this.backend.managed.pid})`);

    const failed = new Set<string>();
    for (let round = 0; round < s.rounds; round++) {
      const order = runnable.map((_, i) => runnable[(i + round) % runnable.length]!);
      for (const target of order) {
        if (failed.has(target.name)) continue;
        try {
          await this.relayTarget(target, round);
        } catch (error) {
          failed.add(target.name);
          const message = error instanceof Error ? error.message : String(error);
          this.errors.push(`${target.name}: ${message}`);
          log(`${target.name} failed: ${message}`);
        }
      }
    }

    const fdLimit = openFileLimit();
    // the proxy needs 2 descriptors per connection, plus headroom
    const idleFit = Math.floor((fdLimit - 200) / 2);
    let idleCount = s.idleConnections;
    if (idleCount > idleFit) {
      this.notes.push(
        `Idle test reduced from ${idleCount} to ${idleFit} connections (open-file limit ${fdLimit}).`,
      );
      idleCount = Math.max(0, idleFit);
    }
    if (idleCount > 0) {
      for (const target of runnable) {
        if (target.start === undefined || failed.has(target.name)) continue;
        try {
          await this.idleTarget(target, idleCount);
        } catch (error) {
          const message = error instanceof Error ? error.message : String(error);
          this.errors.push(`${target.name} (idle): ${message}`);
          log(`${target.name} idle test failed: ${message}`);
        }
      }
    }
    await this.registry.stop(this.backend.managed, 2000);

    const report = this.report(idleCount);
    process.stdout.write(report.markdown);
    saveResults({
      'latest.md': report.markdown,
      'latest.json': `${JSON.stringify(report.json, (_key, value: unknown) => (value === undefined ? null : value), 2)}\n`,
    });
    log(`wrote ${join(RESULTS_DIR, 'latest.md')} and latest.json`);
    const invalid = [...this.relayRuns, ...this.idleRuns].some((run) => !run.valid);
    return invalid || this.errors.length > 0 ? 1 : 0;
  }

  private async startTarget(target: ProxyTarget): Promise<RunningProxy | undefined> {
    if (target.start === undefined || this.backend === undefined) return undefined;
    return target.start(this.registry, this.workDir, this.backend.port);
  }

  private async relayTarget(target: ProxyTarget, round: number): Promise<void> {
    const s = this.settings;
    const backend = this.backend;
    if (backend === undefined) return;
    const proxy = await this.startTarget(target);
    try {
      const port = proxy?.port ?? backend.port;
      const proxyPids = proxy === undefined ? undefined : processTree(proxy.managed.pid);
      let repeats = 0;
      for (let i = 0; i < s.sizes.length; i++) {
        const size = s.sizes[i]!;
        const result = await relay<WindowSample>({
          host: HOST,
          port,
          connections: s.connections,
          payloadBytes: size,
          warmupMs: s.warmupMs,
          windowMs: s.windowMs,
          maxWindowMessages: s.maxWindowMessages,
          sample: () => this.sample(proxyPids, backend.managed.pid),
        });
        if (proxy?.managed.exited) throw new Error(`${target.name} exited during the ${fmtSize(size)} run`);
        let run = this.relayRun(target.name, size, round, result);
        if (run.disturbed && repeats < MAX_REPEATS_PER_RUN && this.repeatBudget > 0) {
          this.repeatBudget--;
          this.discardedRuns.push(run);
          log(
            `[round ${round + 1}/${s.rounds}] ${target.name} ${fmtSize(size)}: disturbed (steal ` +
              `${fmtPct(run.steal)}, other processes ${fmtNum(run.otherCores, 2)} cores), repeating it`,
          );
          repeats++;
          i--;
          continue;
        }
        run = { ...run, repeats };
        repeats = 0;
        this.relayRuns.push(run);
        const cpu =
          run.proxyCpuMsPer1k === undefined ? '' : `, proxy CPU ${fmtNum(run.proxyCpuMsPer1k, 1)} ms/1k`;
        const bad = run.valid ? '' : ` INVALID ${JSON.stringify(run.failures)}`;
        log(
          `[round ${round + 1}/${s.rounds}] ${target.name} ${fmtSize(size)}: ${fmtInt(run.messagesPerSecond)} msg/s` +
            `${cpu}, load CPU ${fmtPct(run.loadCpuShare)}${bad}`,
        );
      }
    } finally {
      if (proxy !== undefined) await this.registry.stop(proxy.managed);
    }
  }

  private relayRun(target: string, size: number, round: number, result: RelayResult<WindowSample>): RelayRun {
    const { start, end, messages, seconds } = result;
    let proxyCpuMsPer1k: number | undefined;
    let proxyCpuSchedMsPer1k: number | undefined;
    let proxyCpuShare: number | undefined;
    let loadCpuShare = 0;
    let steal = 0;
    let otherCores = 0;
    if (start !== undefined && end !== undefined && seconds > 0) {
      if (start.proxy !== undefined && end.proxy !== undefined) {
        const cpuMs = ((end.proxy.ticks - start.proxy.ticks) / this.clkTck) * 1000;
        const schedMs = (end.proxy.schedNs - start.proxy.schedNs) / 1e6;
        proxyCpuShare = cpuMs / 1000 / seconds;
        if (messages > 0) {
          proxyCpuMsPer1k = (cpuMs / messages) * 1000;
          proxyCpuSchedMsPer1k = (schedMs / messages) * 1000;
        }
      }
      const backendMs = ((end.backend.ticks - start.backend.ticks) / this.clkTck) * 1000;
      const selfMs = (end.selfMicros - start.selfMicros) / 1000;
      loadCpuShare = (backendMs + selfMs) / 1000 / seconds;
      const machine = machineDelta(start.machine, end.machine);
      steal = machine.steal;
      const workCores = machine.workTicks / this.clkTck / seconds;
      otherCores = Math.max(0, workCores - (proxyCpuShare ?? 0) - loadCpuShare);
    }
    const failures = result.failures;
    if (result.connections < this.settings.connections) {
      failures['missing-connections'] = this.settings.connections - result.connections;
    }
    return {
      target,
      size,
      round: round + 1,
      connections: result.connections,
      messages,
      seconds,
      messagesPerSecond: seconds > 0 ? messages / seconds : 0,
      proxyCpuMsPer1k,
      proxyCpuSchedMsPer1k,
      proxyCpuShare,
      loadCpuShare,
      steal,
      otherCores,
      disturbed: steal > DISTURBED_STEAL || otherCores > DISTURBED_OTHER_CORES,
      repeats: 0,
      countBound: result.countBound,
      failures,
      valid: failureTotal(failures) === 0 && messages > 0,
    };
  }

  private async idleTarget(target: ProxyTarget, count: number): Promise<void> {
    const proxy = await this.startTarget(target);
    if (proxy === undefined) return;
    try {
      await sleep(500);
      const before = rssKiB(processTree(proxy.managed.pid));
      log(`${target.name}: opening ${fmtInt(count)} idle connections (RSS before ${fmtInt(before)} KiB)`);
      const idle = await openIdle({
        host: HOST,
        port: proxy.port,
        connections: count,
        concurrency: this.settings.idleConcurrency,
        payloadBytes: 32,
        openTimeoutMs: 60_000,
      });
      // let the proxy settle (deferred frees, lazy allocations) and, with keepalive on, ping every
      // connection at least once before reading RSS
      await sleep(3000);

      const pids = processTree(proxy.managed.pid);
      const after = rssKiB(pids);
      await idle.close();
      const failures = idle.failures;
      if (idle.opened < count && failureTotal(failures) === 0)
        failures['not-open-at-end'] = count - idle.opened;
      const run: IdleRun = {
        target: target.name,
        requested: count,
        opened: idle.opened,
        openSeconds: idle.seconds,
        rssBeforeKiB: before,
        rssAfterKiB: after,
        perConnectionKiB: idle.opened > 0 ? (after - before) / idle.opened : undefined,
        processes: pids.length,
        failures,
        valid: failureTotal(failures) === 0 && idle.opened === count,
      };
      this.idleRuns.push(run);
      const per = run.perConnectionKiB === undefined ? '-' : fmtNum(run.perConnectionKiB, 2);
      log(
        `${target.name}: ${fmtInt(idle.opened)} idle connections in ${fmtNum(idle.seconds, 1)} s, ` +
          `RSS ${fmtInt(before)} -> ${fmtInt(after)} KiB, ${per} KiB/connection${run.valid ? '' : ' INVALID'}`,
      );
    } finally {
      await this.registry.stop(proxy.managed);
    }
  }

  private report(idleCount: number): { markdown: string; json: unknown } {
    const s = this.settings;
    const nginx = this.targets.find((target) => target.name === 'nginx');
    const wsgate = this.targets.find((target) => target.name === 'wsgate');
    const machine = { nproc: NPROC_AT_START, cpus: cpus().length, cpuModel: cpuModel(), kernel: release() };
    const versions = {
      node: process.version,
      nginx: nginx?.version ?? 'not run',
      wsgate: wsgate?.version ?? 'not run',
    };
    const names = this.targets.filter((target) => target.skip === undefined).map((target) => target.name);

    const summary: Record<string, Record<string, { rate?: Stat; cpu?: Stat; valid: boolean }>> = {};
    for (const size of s.sizes) {
      const bySize: Record<string, { rate?: Stat; cpu?: Stat; valid: boolean }> = {};
      for (const name of names) {
        const runs = this.relayRuns.filter((run) => run.target === name && run.size === size);
        if (runs.length === 0) continue;
        const rate = stat(runs.map((run) => run.messagesPerSecond));
        const cpu = stat(
          runs.flatMap((run) => (run.proxyCpuMsPer1k === undefined ? [] : [run.proxyCpuMsPer1k])),
        );
        bySize[name] = {
          ...(rate ? { rate } : {}),
          ...(cpu ? { cpu } : {}),
          valid: runs.every((run) => run.valid),
        };
      }
      summary[String(size)] = bySize;
    }
    const ratio = (size: number, a: string, b: string, key: 'rate' | 'cpu'): number | undefined => {
      const x = summary[String(size)]?.[a]?.[key]?.median;
      const y = summary[String(size)]?.[b]?.[key]?.median;
      return x === undefined || y === undefined || y === 0 ? undefined : x / y;
    };
    const ratios: Record<string, Record<string, number | undefined>> = {};
    for (const size of s.sizes) {
      ratios[String(size)] = {
        'wsgate/direct': ratio(size, 'wsgate', 'direct', 'rate'),
        'wsgate/nginx': ratio(size, 'wsgate', 'nginx', 'rate'),
        'nginx/direct': ratio(size, 'nginx', 'direct', 'rate'),
        'cpu wsgate/nginx': ratio(size, 'wsgate', 'nginx', 'cpu'),
        'cpu wsgate-limits/wsgate': ratio(size, 'wsgate-limits', 'wsgate', 'cpu'),
        'cpu wsgate-limits/nginx': ratio(size, 'wsgate-limits', 'nginx', 'cpu'),
      };
    }

    const lines: string[] = [];
    const cell = (value: Stat | undefined, digits: number, valid: boolean): string => {
      if (value === undefined) return '-';
      const main = digits === 0 ? fmtInt(value.median) : fmtNum(value.median, digits);
      const spread = value.runs > 1 ? ` ±${Math.round(value.spreadPct)}%` : '';
      return `${main}${spread}${valid ? '' : ' INVALID'}`;
    };
    const ratioCell = (value: number | undefined): string => (value === undefined ? '-' : fmtNum(value, 2));
    lines.push('# wsgate echo benchmark', '');
    lines.push(
      `- Machine: ${machine.nproc} CPUs (nproc), ${machine.cpuModel}, Linux ${machine.kernel}`,
      `- Versions: node ${versions.node}; nginx ${versions.nginx}; wsgate ${versions.wsgate}`,
      `- Pinning: ${this.registry.pinning ? 'proxy on CPU 0; load client + echo backend on CPU 1' : 'none'}`,
      `- Load: ${s.connections} connections, each ping-ponging one binary message; ${s.warmupMs / 1000} s warm-up + ` +
        `${s.windowMs / 1000} s measured window (or ${fmtInt(s.maxWindowMessages)} messages); ` +
        `${s.rounds} round${s.rounds === 1 ? '' : 's'}, median${s.rounds > 1 ? ' ±(max−min)/median' : ''}`,
      `- One message = one client frame + its echo, verified byte for byte.`,
      '',
    );
    lines.push('## Echo throughput (messages/s)', '');
    lines.push(`| size | ${names.join(' | ')} | wsgate/direct | wsgate/nginx | nginx/direct |`);
    lines.push(`|---|${names.map(() => '---:').join('|')}|---:|---:|---:|`);
    for (const size of s.sizes) {
      const bySize = summary[String(size)] ?? {};
      const cells = names.map((name) => cell(bySize[name]?.rate, 0, bySize[name]?.valid ?? true));
      const r = ratios[String(size)] ?? {};
      lines.push(
        `| ${fmtSize(size)} | ${cells.join(' | ')} | ${ratioCell(r['wsgate/direct'])} | ` +
          `${ratioCell(r['wsgate/nginx'])} | ${ratioCell(r['nginx/direct'])} |`,
      );
    }
    const proxies = names.filter((name) => name !== 'direct');
    if (proxies.length > 0) {
      lines.push('', '## Proxy CPU time per 1,000 messages (ms, utime+stime of the proxy process tree)', '');
      const shares = (name: string, size: number, key: 'proxyCpuShare' | 'loadCpuShare'): string => {
        const values = this.relayRuns
          .filter((run) => run.target === name && run.size === size)
          .flatMap((run) => (run[key] === undefined ? [] : [run[key]]));
        const median = stat(values)?.median;
        return median === undefined ? '-' : fmtPct(median);
      };
      lines.push(
        `| size | ${proxies.map((name) => `${name} ms/1k`).join(' | ')} | wsgate/nginx | limits on/off | ` +
          `${proxies.map((name) => `${name}: proxy CPU / load CPU`).join(' | ')} |`,
      );
      lines.push(
        `|---|${proxies.map(() => '---:').join('|')}|---:|---:|${proxies.map(() => '---:').join('|')}|`,
      );
      for (const size of s.sizes) {
        const bySize = summary[String(size)] ?? {};
        const cells = proxies.map((name) => cell(bySize[name]?.cpu, 1, bySize[name]?.valid ?? true));
        const load = proxies.map(
          (name) => `${shares(name, size, 'proxyCpuShare')} / ${shares(name, size, 'loadCpuShare')}`,
        );
        lines.push(
          `| ${fmtSize(size)} | ${cells.join(' | ')} | ${ratioCell(ratios[String(size)]?.['cpu wsgate/nginx'])} | ` +
            `${ratioCell(ratios[String(size)]?.['cpu wsgate-limits/wsgate'])} | ${load.join(' | ')} |`,
        );
      }
      lines.push(
        '',
        'proxy CPU / load CPU: share of one core used by the proxy, and by the load client + echo backend ' +
          '(CPU 1), over the window. Load CPU near 100% means msg/s is capped by the load side; ' +
          'CPU per 1,000 messages is still valid then. limits on/off: wsgate-limits (every message limit, ' +
          'both rate buckets, idle timeout, keepalive to both sides and lifetime on, none hit) over wsgate ' +
          '(every limit off).',
      );
    }
    if (this.idleRuns.length > 0) {
      lines.push('', `## RSS per idle connection (${fmtInt(idleCount)} connections, fresh proxy)`, '');
      lines.push('| proxy | RSS before (MiB) | RSS after (MiB) | KiB per connection | processes |');
      lines.push('|---|---:|---:|---:|---:|');
      for (const run of this.idleRuns) {
        const per = run.perConnectionKiB === undefined ? '-' : fmtNum(run.perConnectionKiB, 2);
        lines.push(
          `| ${run.target} | ${fmtNum(run.rssBeforeKiB / 1024, 1)} | ${fmtNum(run.rssAfterKiB / 1024, 1)} | ` +
            `${per}${run.valid ? '' : ' INVALID'} | ${run.processes} |`,
        );
      }
      const wsIdle = this.idleRuns.find((run) => run.target === 'wsgate')?.perConnectionKiB;
      const ngIdle = this.idleRuns.find((run) => run.target === 'nginx')?.perConnectionKiB;
      if (wsIdle !== undefined && ngIdle !== undefined && ngIdle > 0) {
        lines.push('', `wsgate/nginx per idle connection: ${fmtNum(wsIdle / ngIdle, 2)}`);
      }
    }

    const notes = [...this.notes];
    const invalid = [...this.relayRuns, ...this.idleRuns].filter((run) => !run.valid);
    for (const run of invalid) {
      const what =
        'size' in run ? `${run.target} ${fmtSize(run.size)} round ${run.round}` : `${run.target} idle`;
      notes.push(`INVALID: ${what}: failures ${JSON.stringify(run.failures)}.`);
    }
    if (this.discardedRuns.length > 0) {
      notes.push(
        `${this.discardedRuns.length} disturbed window(s) repeated: ` +
          `${this.discardedRuns.map((run) => `${run.target} ${fmtSize(run.size)} r${run.round}`).join(', ')}.`,
      );
    }
    const noisy = this.relayRuns.filter((run) => run.disturbed);
    if (noisy.length > 0) {
      notes.push(
        `Kept although disturbed (repeat limit reached): ` +
          `${noisy.map((run) => `${run.target} ${fmtSize(run.size)} r${run.round}`).join(', ')}.`,
      );
    }
    const countBound = this.relayRuns.filter((run) => run.countBound);
    if (countBound.length > 0) notes.push(`${countBound.length} window(s) ended on the message-count bound.`);
    for (const error of this.errors) notes.push(`ERROR: ${error.split('\n')[0]}`);
    if (notes.length > 0) {
      lines.push('', '## Notes', '');
      for (const note of notes) lines.push(`- ${note}`);
    }
    if (invalid.length === 0 && this.errors.length === 0) {
      lines.push('', 'All echoes verified: no failures.');
    }
    lines.push('');

    const json = {
      meta: {
        date: new Date().toISOString(),
        machine,
        versions,
        settings: s,
        pinning: this.registry.pinning ? { proxy: 'cpu0', loadClientAndBackend: 'cpu1' } : null,
        clockTicksPerSecond: this.clkTck,
        openFileLimit: openFileLimit(),
        idleConnections: idleCount,
        definitions: {
          message: 'one client frame and its echo (the proxy relays two frames per message)',
          proxyCpuMsPer1k:
            'utime+stime (/proc/PID/stat) summed over the proxy process tree, per 1,000 messages',
          proxyCpuSchedMsPer1k: 'the same from /proc/PID/task/*/schedstat (live threads), as a cross-check',
          perConnectionKiB: '(VmRSS of the proxy tree after opening N connections - before) / N',
        },
        notes,
        errors: this.errors,
      },
      summary,
      ratios,
      relay: this.relayRuns,
      discardedRelay: this.discardedRuns,
      idle: this.idleRuns,
    };
    return { markdown: lines.join('\n'), json };
  }
}

const settings = parseSettings();
void benchMain(settings.pin, (registry, workDir) => new Bench(settings, registry, workDir).run());
