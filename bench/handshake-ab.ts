/**
 * A paired A/B of CPU per handshake: wsgate as shipped from this checkout against another
 * checkout (`--compare DIR`, e.g. a git worktree of the commit before a change), and nginx with
 * `--nginx`, rounds alternating, a fresh proxy for every round. Each round runs a warm-up, then
 * `--count` handshakes at `--in-flight` (handshake-load.ts: handshake, close frame, wait for the
 * close, next), and reads the proxy's CPU (scheduler time of all its threads) per 1,000
 * handshakes. Every round's figure is printed beside the median: on a shared machine a change of
 * a few per cent shows only as a shift of most pairs, never in one run.
 *
 *   bash bench/run.sh --handshake-ab --compare DIR [--rounds 6] [--count 5000] [--in-flight 50] [--nginx]
 *
 * Markdown on stdout (progress on stderr) and bench/results/handshake-ab-latest.md.
 */
import { parseArgs } from 'node:util';
import { BENCH_DIR, benchMain, integerList, log, ROOT_DIR, saveResults } from './bench-main.ts';
import { handshakeLoad } from './handshake-load.ts';
import { failureTotal } from './load-client.ts';
import { cpuSample, processTree } from './proc.ts';
import { HOST, nginxTarget, type ProxyTarget, type Registry, startBackend, wsgateTarget } from './targets.ts';

interface Settings {
  readonly rounds: number;
  readonly count: number;
  readonly inFlight: number;
  readonly compare: string | undefined;
  readonly nginx: boolean;
}

function settingsFrom(args: string[]): Settings {
  const { values } = parseArgs({
    args,
    options: {
      'handshake-ab': { type: 'boolean', default: true },
      rounds: { type: 'string', default: '6' },
      count: { type: 'string', default: '5000' },
      'in-flight': { type: 'string', default: '50' },
      compare: { type: 'string' },
      nginx: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    process.stderr.write(
      'usage: bash bench/run.sh --handshake-ab [--compare DIR] [--rounds 6] [--count 5000] [--in-flight 50] [--nginx]\n',
    );
    process.exit(0);
  }
  const one = (text: string, name: string, max: number): number => integerList(text, name, max)[0] ?? 1;
  return {
    rounds: one(values.rounds, 'rounds', 50),
    count: one(values.count, 'count', 200_000),
    inFlight: one(values['in-flight'], 'in-flight', 1000),
    compare: values.compare,
    nginx: values.nginx,
  };
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[middle] ?? 0)
    : ((sorted[middle - 1] ?? 0) + (sorted[middle] ?? 0)) / 2;
}

async function run(settings: Settings, registry: Registry, workDir: string): Promise<number> {
  const backend = await startBackend(registry, BENCH_DIR, workDir);
  const targets: ProxyTarget[] = [wsgateTarget(ROOT_DIR, process.execPath, 'defaults')];
  if (settings.compare !== undefined) {
    targets.push({ ...wsgateTarget(settings.compare, process.execPath, 'defaults'), name: 'wsgate-compare' });
  }
  if (settings.nginx) targets.push(nginxTarget());
  const figures = new Map<string, number[]>();
  let failures = 0;
  for (let round = 1; round <= settings.rounds; round++) {
    for (const target of targets) {
      if (target.skip !== undefined || target.start === undefined) continue;
      const proxy = await target.start(registry, workDir, backend.port);
      try {
        const pids = processTree(proxy.managed.pid);
        const load = { host: HOST, port: proxy.port, concurrency: settings.inFlight, warmupMs: 0 };
        await handshakeLoad({ ...load, windowMs: 30_000, maxHandshakes: 1_500, sample: () => undefined });
        const result = await handshakeLoad({
          ...load,
          windowMs: 120_000,
          maxHandshakes: settings.count,
          sample: () => cpuSample(pids),
        });
        failures += failureTotal(result.failures);
        const msPerThousand = (result.end.schedNs - result.start.schedNs) / 1e6 / (result.handshakes / 1000);
        figures.set(target.name, [...(figures.get(target.name) ?? []), msPerThousand]);
        log(`round ${round} ${target.name}: ${msPerThousand.toFixed(0)} ms per 1,000 handshakes`);
      } finally {
        await registry.stop(proxy.managed);
      }
    }
  }
  const lines = [
    `# CPU per 1,000 handshakes, ${settings.inFlight} in flight, ${settings.count} per round, ${settings.rounds} rounds alternating`,
    '',
    '| target | version | median ms | rounds (ms) |',
    '|---|---|---:|---|',
  ];
  for (const target of targets) {
    const mine = figures.get(target.name) ?? [];
    const each = mine.map((value) => value.toFixed(0)).join(', ');
    const shown = mine.length > 0 ? median(mine).toFixed(0) : '—';
    lines.push(`| ${target.name} | ${target.version} | ${shown} | ${target.skip ?? each} |`);
  }
  if (failures > 0) lines.push('', `${failures} handshakes failed.`);
  const markdown = `${lines.join('\n')}\n`;
  process.stdout.write(markdown);
  saveResults({ 'handshake-ab-latest.md': markdown });
  return failures > 0 ? 1 : 0;
}

const settings = settingsFrom(process.argv.slice(2));
await benchMain(true, (registry, workDir) => run(settings, registry, workDir));
