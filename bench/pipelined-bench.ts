/**
 * Pipelined senders: each connection writes a burst of small frames at once and waits for all of
 * their echoes before the next burst, so reads carry many frames and frame headers straddle read
 * boundaries. This is where a relay that splits its writes (bytes held back from the last read,
 * a gateway pong left out) pays a system call per piece, and where coalescing them shows. Proxy
 * CPU per message (scheduler time of the proxy's threads) for each target, side by side, rounds
 * alternating. `--compare DIR` adds the wsgate checkout in DIR as `wsgate-compare`, for an A/B.
 * Markdown on stdout (progress on stderr), and bench/results/pipelined-latest.md and .json.
 *
 *   bash bench/run.sh --pipelined [--rounds 3] [--connections 50] [--burst 32] [--payload 64]
 *                                 [--segment BYTES] [--targets wsgate-defaults,nginx,direct]
 *                                 [--compare DIR]
 */
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { BENCH_DIR, benchMain, integerList, log, ROOT_DIR, saveResults } from './bench-main.ts';
import { handshake } from './load-client.ts';
import { cpuSample, processTree, syscallCounts } from './proc.ts';
import {
  directTarget,
  HOST,
  nginxTarget,
  type ProxyTarget,
  type Registry,
  startBackend,
  wsgateTarget,
} from './targets.ts';
import { clientFrame, OPCODE_BINARY } from './ws-protocol.ts';

const TARGETS = ['wsgate-defaults', 'wsgate', 'nginx', 'direct'] as const;

interface Settings {
  readonly rounds: number;
  readonly connections: number;
  readonly burst: number;
  readonly payload: number;
  /** Bytes per client write (0: a burst in one write). */
  readonly segment: number;
  readonly targets: readonly string[];
  readonly compare: string | undefined;
  readonly windowMs: number;
  readonly pin: boolean;
}

function positive(text: string, name: string, max: number): number {
  return integerList(text, name, max)[0] ?? 1;
}

function settingsFrom(args: string[]): Settings {
  const { values } = parseArgs({
    args,
    options: {
      pipelined: { type: 'boolean', default: true },
      quick: { type: 'boolean', default: false },
      rounds: { type: 'string' },
      connections: { type: 'string', default: '50' },
      burst: { type: 'string', default: '32' },
      payload: { type: 'string', default: '64' },
      segment: { type: 'string', default: '0' },
      targets: { type: 'string', default: 'wsgate-defaults,nginx,direct' },
      compare: { type: 'string' },
      'no-pin': { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    process.stderr.write(
      'usage: bash bench/run.sh --pipelined [--quick] [--rounds N] [--connections 50] [--burst 32]\n' +
        `         [--payload 64] [--segment BYTES] [--targets ${TARGETS.join(',')}] [--compare DIR] [--no-pin]\n`,
    );
    process.exit(0);
  }
  const targets = values.targets.split(',').map((name) => name.trim());
  for (const name of targets) {
    if (!(TARGETS as readonly string[]).includes(name)) {
      process.stderr.write(`unknown target "${name}" (${TARGETS.join(', ')})\n`);
      process.exit(2);
    }
  }
  return {
    rounds: positive(values.rounds ?? (values.quick ? '1' : '3'), 'rounds', 20),
    connections: positive(values.connections, 'connections', 5000),
    burst: positive(values.burst, 'burst', 1000),
    payload: positive(values.payload, 'payload', 125),
    segment: values.segment === '0' ? 0 : positive(values.segment, 'segment', 1 << 20),
    targets,
    compare: values.compare,
    windowMs: values.quick ? 1500 : 3000,
    pin: !values['no-pin'],
  };
}

/** One connection sending bursts: counts the echoed frames (2-byte header + payload, unmasked). */
class BurstClient {
  readonly socket: Socket;
  readonly #send: () => void;
  #expected = 0;
  #position = 0;
  echoed = 0;
  failed: string | undefined;

  constructor(
    socket: Socket,
    burst: Buffer,
    segment: number,
    frameBytes: number,
    count: number,
    payload: number,
    running: () => boolean,
  ) {
    this.socket = socket;
    // With a segment size, the burst leaves in pieces of that many bytes, one per turn of the
    // event loop, as frames arrive over a network in segments: headers fall across reads.
    const writeFrom = (at: number): void => {
      if (socket.destroyed) return;
      socket.write(burst.subarray(at, at + segment));
      if (at + segment < burst.length) setImmediate(writeFrom, at + segment);
    };
    this.#send = () => {
      this.#expected = count;
      if (segment === 0) socket.write(burst);
      else writeFrom(0);
    };
    socket.on('data', (chunk: Buffer) => {
      for (let at = 0; at < chunk.length; at++) {
        const offset = this.#position % frameBytes;
        if (offset === 0 && chunk[at] !== 0x80 + OPCODE_BINARY) this.failed = 'bad-frame';
        if (offset === 1 && chunk[at] !== payload) this.failed = 'bad-length';
        this.#position++;
        if (offset === frameBytes - 1) {
          this.echoed++;
          this.#expected--;
        }
      }
      if (this.#expected === 0 && running() && this.failed === undefined) this.#send();
    });
    socket.on('error', () => {
      this.failed = 'error';
    });
    socket.on('close', () => {
      this.failed ??= 'closed';
    });
  }

  start(): void {
    this.#send();
  }
}

interface Row {
  readonly target: string;
  readonly round: number;
  readonly messages: number;
  readonly seconds: number;
  /** Proxy CPU µs per message, both directions of an echo counted as one message each way. */
  readonly cpuUsPerMessage: number | undefined;
  /** Proxy write and read system calls per relayed message. */
  readonly writesPerMessage: number | undefined;
  readonly readsPerMessage: number | undefined;
  readonly failures: number;
}

async function measure(
  settings: Settings,
  target: ProxyTarget,
  round: number,
  registry: Registry,
  workDir: string,
  backendPort: number,
): Promise<Row> {
  const proxy = target.start ? await target.start(registry, workDir, backendPort) : undefined;
  try {
    await sleep(300);
    const port = proxy?.port ?? backendPort;
    const pids = proxy ? processTree(proxy.managed.pid) : [];
    let running = true;
    const payload = randomBytes(settings.payload);
    const frame = clientFrame(OPCODE_BINARY, payload, randomBytes(4));
    const burst = Buffer.concat(Array.from({ length: settings.burst }, () => frame));
    const clients: BurstClient[] = [];
    for (let i = 0; i < settings.connections; i++) {
      const { socket, rest } = await handshake(HOST, port, 10_000);
      if (rest.length > 0) throw new Error('bytes after the 101 before any message');
      clients.push(
        new BurstClient(
          socket,
          burst,
          settings.segment,
          2 + settings.payload,
          settings.burst,
          settings.payload,
          () => running,
        ),
      );
    }
    for (const client of clients) client.start();
    await sleep(1000); // warm-up
    const echoedBefore = clients.reduce((sum, client) => sum + client.echoed, 0);
    const before = cpuSample(pids);
    const callsBefore = syscallCounts(pids);
    const startedAt = performance.now();
    await sleep(settings.windowMs);
    const after = cpuSample(pids);
    const callsAfter = syscallCounts(pids);
    const seconds = (performance.now() - startedAt) / 1000;
    const messages = clients.reduce((sum, client) => sum + client.echoed, 0) - echoedBefore;
    running = false;
    await sleep(200);
    const failures = clients.filter((client) => client.failed !== undefined).length;
    for (const client of clients) client.socket.destroy();
    // Each echo is two relayed messages: client to backend and back.
    const relayed = messages * 2;
    // /proc/PID/io counts read(2)/write(2)/writev(2), not recv(2)/send(2): nginx's calls show as none.
    const counted = proxy !== undefined && relayed > 0 && callsAfter.reads > callsBefore.reads;
    return {
      target: target.name,
      round,
      messages: relayed,
      seconds,
      cpuUsPerMessage: proxy && relayed > 0 ? (after.schedNs - before.schedNs) / 1000 / relayed : undefined,
      writesPerMessage: counted ? (callsAfter.writes - callsBefore.writes) / relayed : undefined,
      readsPerMessage: counted ? (callsAfter.reads - callsBefore.reads) / relayed : undefined,
      failures,
    };
  } finally {
    if (proxy) await registry.stop(proxy.managed);
  }
}

function targetsOf(settings: Settings): ProxyTarget[] {
  const node = process.execPath;
  const targets = settings.targets.map((name): ProxyTarget => {
    if (name === 'nginx') return nginxTarget();
    if (name === 'direct') return directTarget;
    return wsgateTarget(ROOT_DIR, node, name === 'wsgate' ? 'off' : 'defaults');
  });
  if (settings.compare !== undefined) {
    targets.push({ ...wsgateTarget(settings.compare, node, 'defaults'), name: 'wsgate-compare' });
  }
  return targets;
}

function median(values: readonly number[]): number | undefined {
  const sorted = [...values].sort((a, b) => a - b);
  if (sorted.length === 0) return undefined;
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle] : ((sorted[middle - 1] ?? 0) + (sorted[middle] ?? 0)) / 2;
}

function report(settings: Settings, targets: readonly ProxyTarget[], rows: readonly Row[]): string {
  const lines = [
    `# Pipelined senders: ${settings.connections} connections, bursts of ${settings.burst} × ${settings.payload} B frames${settings.segment > 0 ? `, written ${settings.segment} B at a time` : ''}`,
    '',
    `${settings.rounds} rounds of ${settings.windowMs / 1000} s, alternating targets; medians.`,
    '',
    '| target | version | relayed msg/s | proxy CPU µs per message | rounds (µs) | writes per 100 messages | reads per 100 messages | writes per read | failed connections |',
    '|---|---|---:|---:|---|---:|---:|---:|---:|',
  ];
  for (const target of targets) {
    if (target.skip !== undefined) {
      lines.push(`| ${target.name} | ${target.version} | — | — | skipped: ${target.skip} | — | — | — | — |`);
      continue;
    }
    const mine = rows.filter((row) => row.target === target.name);
    const rate = median(mine.map((row) => row.messages / row.seconds));
    const perMessage = median(
      mine.flatMap((row) => (row.cpuUsPerMessage === undefined ? [] : [row.cpuUsPerMessage])),
    );
    const each = mine.map((row) => row.cpuUsPerMessage?.toFixed(2) ?? '—').join(', ');
    const failures = mine.reduce((sum, row) => sum + row.failures, 0);
    const per100 = (values: (number | undefined)[]): string =>
      median(values.flatMap((value) => (value === undefined ? [] : [value * 100])))?.toFixed(1) ?? '—';
    const writes = per100(mine.map((row) => row.writesPerMessage));
    const reads = per100(mine.map((row) => row.readsPerMessage));
    const writesPerRead = median(
      mine.flatMap((row) =>
        row.writesPerMessage === undefined || !row.readsPerMessage
          ? []
          : [row.writesPerMessage / row.readsPerMessage],
      ),
    );
    lines.push(
      `| ${target.name} | ${target.version} | ${rate?.toFixed(0) ?? '—'} | ${perMessage?.toFixed(2) ?? '—'} | ${each} | ${writes} | ${reads} | ${writesPerRead?.toFixed(3) ?? '—'} | ${failures} |`,
    );
  }
  return `${lines.join('\n')}\n`;
}

async function run(settings: Settings, registry: Registry, workDir: string): Promise<number> {
  const backend = await startBackend(registry, BENCH_DIR, workDir);
  const targets = targetsOf(settings);
  const rows: Row[] = [];
  for (let round = 1; round <= settings.rounds; round++) {
    for (const target of targets) {
      if (target.skip !== undefined) continue;
      log(`round ${round}: ${target.name}`);
      rows.push(await measure(settings, target, round, registry, workDir, backend.port));
    }
  }
  const markdown = report(settings, targets, rows);
  process.stdout.write(markdown);
  saveResults({
    'pipelined-latest.md': markdown,
    'pipelined-latest.json': `${JSON.stringify({ settings, rows }, null, 2)}\n`,
  });
  return rows.some((row) => row.failures > 0) ? 1 : 0;
}

const settings = settingsFrom(process.argv.slice(2));
await benchMain(settings.pin, (registry, workDir) => run(settings, registry, workDir));
