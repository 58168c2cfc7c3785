/**
 * How cost grows with load, wsgate (as shipped: keepalive pings, the 16 MiB message limit) beside
 * nginx in one run: proxy CPU per 64 B message at several numbers of active connections (each
 * ping-ponging one message in a closed loop, or with --paced all of them sending at one fixed
 * total rate; with TCP segments and delayed ACKs per message, machine-wide), RSS per
 * idle connection at several counts, and handshakes per second (with proxy CPU per handshake and
 * the share of a core used) as handshakes in flight grow until the proxy's core saturates. Every
 * measurement starts a fresh proxy. Counts that do not fit this process's open-file limit are
 * reduced and the report says so. Markdown on stdout (progress on stderr), and
 * bench/results/scaling-latest.md and .json.
 *
 *   bash bench/run.sh --scaling [--quick] [--rounds 3] [--active 100,1000,9000] [--idle 1000,5000,9000]
 *                               [--in-flight 1,10,50,200] [--targets wsgate,nginx]
 *                               [--paced RATE [--closed-loop]] [--only active,idle,handshakes]
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { BENCH_DIR, benchMain, integerList as list, log, ROOT_DIR, saveResults } from './bench-main.ts';
import { handshakeLoad } from './handshake-load.ts';
import { failureTotal, openIdle, relay } from './load-client.ts';
import {
  type CpuSample,
  clockTicksPerSecond,
  cpuSample,
  openFileLimit,
  processTree,
  rssKiB,
  type TcpSample,
  tcpSample,
} from './proc.ts';
import { background, type Mode, type Row, scalingReport } from './scaling-report.ts';
import {
  HOST,
  nginxTarget,
  type ProxyTarget,
  type Registry,
  type RunningProxy,
  startBackend,
  wsgateTarget,
} from './targets.ts';

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
  /** How the active connections send: closed loop, paced at `pacedRate`, or both per round. */
  readonly modes: readonly Mode[];
  /** Paced: messages per second across all connections. */
  readonly pacedRate: number | undefined;
  /** The measurements to run. */
  readonly parts: readonly Part[];
}

const PARTS = ['active', 'idle', 'handshakes'] as const;
type Part = (typeof PARTS)[number];

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
      paced: { type: 'string' },
      'closed-loop': { type: 'boolean', default: false },
      only: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    process.stderr.write(
      'usage: bash bench/run.sh --scaling [--quick] [--rounds N] [--active 100,1000,9000] [--idle 1000,5000,9000]\n' +
        '         [--in-flight 1,10,50,200] [--targets wsgate,nginx] [--no-pin]\n' +
        '         [--paced RATE [--closed-loop]] [--only active,idle,handshakes]\n' +
        '  --paced RATE: active connections send RATE messages/s in all, spread evenly (instead of\n' +
        '                each ping-ponging in a closed loop); --closed-loop runs the closed loop too\n',
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
  const parts = (values.only ?? PARTS.join(',')).split(',').map((part) => part.trim());
  for (const part of parts) {
    if (!(PARTS as readonly string[]).includes(part)) {
      process.stderr.write(`--only: unknown part "${part}" (${PARTS.join(', ')})\n`);
      process.exit(2);
    }
  }
  const pacedRate = values.paced === undefined ? undefined : list(values.paced, 'paced', 10_000_000)[0];
  const modes: Mode[] =
    pacedRate === undefined ? ['closed'] : values['closed-loop'] ? ['closed', 'paced'] : ['paced'];
  return {
    rounds: list(values.rounds ?? (values.quick ? '1' : '3'), 'rounds', 20)[0] ?? 1,
    active: list(values.active ?? (values.quick ? '100,1000' : '100,1000,9000'), 'active', 100_000),
    idle: list(values.idle ?? (values.quick ? '1000' : '1000,5000,9000'), 'idle', 100_000),
    inFlight: list(values['in-flight'] ?? (values.quick ? '1,50' : '1,10,50,200'), 'in-flight', 1000),
    targets,
    windowMs: values.quick ? 1500 : 3000,
    pin: !values['no-pin'],
    modes,
    pacedRate,
    parts: parts as Part[],
  };
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

  /**
   * Idle counts with the proxy processes each needs: a proxy holds two descriptors per connection,
   * so a count one process's open-file limit cannot hold runs on several worker processes (the
   * load client and the backend hold one per connection each, in processes of their own).
   */
  #idleFitting(counts: readonly number[]): { count: number; processes: number }[] {
    const limit = openFileLimit();
    const perProcess = Math.floor((limit - FD_RESERVE) / 2);
    const kept = counts.filter((count) => count <= limit - FD_RESERVE);
    const dropped = counts.filter((count) => count > limit - FD_RESERVE);
    if (dropped.length > 0) {
      this.#notes.push(
        `Idle connections: ${dropped.join(', ')} left out: the open-file limit is ${limit} per process ` +
          `and the load client and the backend are one process each.`,
      );
    }
    const split = kept.filter((count) => count > perProcess);
    if (split.length > 0) {
      this.#notes.push(
        `Idle connections: ${split.join(', ')} ran on several worker processes per proxy (wsgate's ` +
          `workers, nginx's worker_processes): at most ${perProcess} connections fit one process ` +
          `under the open-file limit of ${limit}. RSS is summed over every process of the proxy.`,
      );
    }
    return kept.map((count) => ({ count, processes: Math.ceil(count / perProcess) }));
  }

  async #withProxy(
    target: ProxyTarget,
    use: (proxy: RunningProxy, pids: number[]) => Promise<void>,
    processes = 1,
  ) {
    if (target.start === undefined) return;
    const proxy = await target.start(this.#registry, this.#workDir, this.#backendPort, processes);
    try {
      await sleep(300);
      // The port may answer before every worker has started: a worker that starts later would
      // count its whole baseline as the connections' memory. Both proxies run a master and the
      // workers.
      const startedBy = performance.now() + 10_000;
      while (processes > 1 && processTree(proxy.managed.pid).length < processes + 1) {
        if (performance.now() > startedBy)
          throw new Error(`${target.name}: ${processes} workers did not start`);
        await sleep(100);
      }
      await use(proxy, processTree(proxy.managed.pid));
    } finally {
      await this.#registry.stop(proxy.managed);
    }
  }

  async #active(target: ProxyTarget, connections: number, mode: Mode): Promise<void> {
    const rate = mode === 'paced' ? this.#settings.pacedRate : undefined;
    await this.#withProxy(target, async (proxy, pids) => {
      // other TCP traffic on the machine, in half a second before the connections open
      const quiet = tcpSample();
      await sleep(500);
      const background = (tcpSample().outSegs - quiet.outSegs) / 0.5;
      const result = await relay<{ cpu: CpuSample; tcp: TcpSample }>({
        host: HOST,
        port: proxy.port,
        connections,
        openConcurrency: 200,
        payloadBytes: 64,
        warmupMs: 1000,
        windowMs: this.#settings.windowMs,
        maxWindowMessages: 3_000_000,
        sample: () => ({ cpu: cpuSample(pids), tcp: tcpSample() }),
        ratePerSecond: rate,
      });
      const { start, end, messages } = result;
      const cpuMs = start && end ? this.#cpuMs(start.cpu, end.cpu) : undefined;
      const segments = start && end ? end.tcp.outSegs - start.tcp.outSegs : undefined;
      const delayedAcks = start && end ? end.tcp.delayedAcks - start.tcp.delayedAcks : undefined;
      const perMessage = (delta: number | undefined, by: number): number | undefined =>
        delta !== undefined && Number.isFinite(delta) && messages > 0 ? (delta * by) / messages : undefined;
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
        mode,
        targetRate: rate,
        segmentsPerMessage: perMessage(segments, 1),
        backgroundSegmentsPerSecond: Number.isFinite(background) ? background : undefined,
        delayedAcksPer1k: perMessage(delayedAcks, 1000),
        lateShare:
          rate === undefined || result.dueSends === 0 ? undefined : result.lateSends / result.dueSends,
      });
    });
  }

  async #idle(target: ProxyTarget, connections: number, processes: number): Promise<void> {
    await this.#withProxy(
      target,
      async (proxy, pids) => {
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
          processes,
        });
      },
      processes,
    );
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
    const mode = row.mode === undefined ? '' : ` ${row.mode}${row.targetRate ? ` ${row.targetRate}/s` : ''}`;
    const tcp =
      row.segmentsPerMessage === undefined
        ? ''
        : `, ${row.segmentsPerMessage.toFixed(2)} seg/msg (background ${background(row)?.toFixed(2) ?? '-'}), ` +
          `${row.delayedAcksPer1k?.toFixed(1) ?? '-'} delayed ACKs/1k`;
    const late = row.lateShare === undefined ? '' : `, ${(row.lateShare * 100).toFixed(1)} % late`;
    log(
      `${row.target} ${row.measure}${mode} ${row.count}: ${row.perUnit?.toFixed(2) ?? '-'} ${unit}${rate}${cores}${tcp}${late}${bad}`,
    );
  }

  async run(): Promise<number> {
    const s = this.#settings;
    const backend = await startBackend(this.#registry, BENCH_DIR, this.#workDir);
    this.#backendPort = backend.port;
    const targets = s.targets.map((name) =>
      name === 'nginx' ? nginxTarget() : wsgateTarget(ROOT_DIR, process.execPath, 'defaults'),
    );
    for (const target of targets)
      if (target.skip) this.#notes.push(`${target.name} skipped: ${target.skip}.`);
    const runnable = targets.filter((target) => target.skip === undefined);
    const active = this.#fitting(s.active, 'Active connections');
    const idle = this.#idleFitting(s.idle);
    for (let round = 0; round < s.rounds; round++) {
      // The order of the targets rotates per round, so a noisy spell hits several of them.
      const order = runnable.map((_, i) => runnable[(i + round) % runnable.length] as ProxyTarget);
      log(`round ${round + 1}/${s.rounds}`);
      if (s.parts.includes('active'))
        for (const mode of s.modes)
          for (const count of active) for (const target of order) await this.#active(target, count, mode);
      if (s.parts.includes('idle'))
        for (const { count, processes } of idle)
          for (const target of order) await this.#idle(target, count, processes);
      if (s.parts.includes('handshakes')) for (const target of order) await this.#handshakes(target);
    }
    const markdown = scalingReport(this.#rows, runnable, this.#notes);
    process.stdout.write(`${markdown}\n`);
    saveResults({
      'scaling-latest.md': `${markdown}\n`,
      'scaling-latest.json': `${JSON.stringify({ settings: s, rows: this.#rows, notes: this.#notes }, null, 2)}\n`,
    });
    return this.#rows.some((row) => failureTotal(row.failures) > 0 || row.perUnit === undefined) ? 1 : 0;
  }
}

const settings = settingsFrom(process.argv.slice(2));
void benchMain(settings.pin, (registry, workDir) => new ScalingBench(settings, registry, workDir).run());
