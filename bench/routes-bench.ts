/**
 * What a large route table costs: router lookups (ns per lookup at 10, 1,000 and 10,000 routes,
 * and the ratio 10,000 ÷ 10, which stays near 1 when lookup cost does not grow with the routes),
 * then for a 10,000-route file the time of `wsgate check`, the time to load and start a gateway
 * and its RSS at rest, each next to the same figure for a 10-route file. The configurations come
 * from many-routes.ts. It takes about ten seconds, most of it loading the 10,000-route file twice
 * (check, then start). It is a report, not a test.
 *
 *   node bench/routes-bench.ts
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { RouteConfig } from '../src/config/schema.ts';
import { RouteLookup } from '../src/routing/route-lookup.ts';
import { generatedRoutes, type LookupRequest, lookupRequests, manyRoutesConfig } from './many-routes.ts';
import type { StartFigures } from './routes-start.ts';

const ROOT = resolve(import.meta.dirname, '..');
const LOOKUP_SIZES = [10, 1_000, 10_000] as const;
const LARGE = 10_000;
const SMALL = 10;
const LOOKUP_WINDOW_MS = 50;
const LOOKUP_ROUNDS = 8;
/** How long the started gateway idles before its RSS is read. */
const IDLE_MS = 500;
/** Distinct requests per workload: few (they stay in the CPU caches) and many (spread over the table). */
const HOT_REQUESTS = 64;
const SPREAD_REQUESTS = 4_096;

function routeTable(count: number): Record<string, RouteConfig> {
  return Object.fromEntries(
    generatedRoutes(count).map((route) => [
      route.name,
      { hosts: [...route.hosts], path: route.path, pool: route.pool },
    ]),
  );
}

/** A lookup workload: the router and the requests sent to it, over and over. */
interface Workload {
  readonly count: number;
  readonly router: RouteLookup;
  readonly requests: readonly LookupRequest[];
}

/** Nanoseconds per lookup over one window of repeated passes over the requests. */
function lookupWindow({ router, requests }: Workload): number {
  let found = 0;
  let passes = 0;
  const start = process.hrtime.bigint();
  const end = start + BigInt(LOOKUP_WINDOW_MS * 1e6);
  let now = start;
  while (now < end) {
    for (const { host, url } of requests) if (router.find(host, url).route !== undefined) found++;
    passes++;
    now = process.hrtime.bigint();
  }
  // Every pass finds the same routes; anything else means the router is not deterministic.
  if (found % passes !== 0) throw new Error('lookups differ from pass to pass');
  return Number(now - start) / (passes * requests.length);
}

/**
 * The fastest window of each workload (the least disturbed by a noisy machine), the workloads
 * interleaved so that a noisy spell hits every size alike.
 */
function measureLookups(workloads: readonly Workload[]): number[] {
  const best = workloads.map(() => Number.POSITIVE_INFINITY);
  for (const workload of workloads) lookupWindow(workload);
  for (let round = 0; round < LOOKUP_ROUNDS; round++) {
    workloads.forEach((workload, index) => {
      best[index] = Math.min(best[index] ?? Number.POSITIVE_INFINITY, lookupWindow(workload));
    });
  }
  return best;
}

function hitRate(workload: Workload): number {
  const found = workload.requests.filter(
    ({ host, url }) => workload.router.find(host, url).route !== undefined,
  );
  return found.length / workload.requests.length;
}

function node(args: readonly string[]): { ms: number; stdout: string } {
  const start = performance.now();
  const result = spawnSync(process.execPath, args, { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
  const ms = performance.now() - start;
  if (result.status !== 0) throw new Error(`node ${args.join(' ')} failed: ${result.stderr}`);
  return { ms, stdout: result.stdout };
}

function checkMs(file: string): number {
  return node(['src/cli.ts', 'check', '--config', file]).ms;
}

function startFigures(file: string): StartFigures {
  const { stdout } = node(['--expose-gc', 'bench/routes-start.ts', file, String(IDLE_MS)]);
  return JSON.parse(stdout) as StartFigures;
}

const format = (value: number, digits = 0): string =>
  value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });

function main(): void {
  const routers = LOOKUP_SIZES.map((count) => new RouteLookup(routeTable(count)));
  const workloads = (requests: number): Workload[] =>
    LOOKUP_SIZES.map((count, index) => ({
      count,
      router: routers[index] ?? new RouteLookup({}),
      requests: lookupRequests(count, requests),
    }));
  const hot = workloads(HOT_REQUESTS);
  const spread = workloads(SPREAD_REQUESTS);
  const measured = measureLookups([...hot, ...spread]);
  const hotNs = measured.slice(0, hot.length);
  const spreadNs = measured.slice(hot.length);

  const dir = mkdtempSync(join(tmpdir(), 'wsgate-routes-'));
  try {
    const files = { large: join(dir, 'large.yaml'), small: join(dir, 'small.yaml') };
    writeFileSync(files.large, manyRoutesConfig(LARGE));
    writeFileSync(files.small, manyRoutesConfig(SMALL));
    const check = { large: checkMs(files.large), small: checkMs(files.small) };
    const start = { large: startFigures(files.large), small: startFigures(files.small) };

    const lines = [
      `| routes | ns/lookup, ${HOT_REQUESTS} distinct requests | ns/lookup, ${format(SPREAD_REQUESTS)} distinct requests | requests with a route |`,
      '|---:|---:|---:|---:|',
    ];
    spread.forEach((workload, index) => {
      lines.push(
        `| ${format(workload.count)} | ${format(hotNs[index] ?? Number.NaN, 1)} | ${format(spreadNs[index] ?? Number.NaN, 1)} | ${format(hitRate(workload) * 100)}% |`,
      );
    });
    const ratio = (ns: readonly number[]): string =>
      format((ns[ns.length - 1] ?? Number.NaN) / (ns[0] ?? Number.NaN), 2);
    lines.push(
      '',
      `ns/lookup ratio ${format(LARGE)} ÷ ${format(SMALL)} routes: ${ratio(hotNs)} (${HOT_REQUESTS} requests), ${ratio(spreadNs)} (${format(SPREAD_REQUESTS)} requests)`,
      '',
      `| | ${format(LARGE)} routes | ${format(SMALL)} routes |`,
      '|---|---:|---:|',
      `| \`wsgate check\` (whole process) | ${format(check.large)} ms | ${format(check.small)} ms |`,
      `| load the file | ${format(start.large.loadMs)} ms | ${format(start.small.loadMs)} ms |`,
      `| createGateway + start | ${format(start.large.startMs)} ms | ${format(start.small.startMs)} ms |`,
      `| RSS at rest (${IDLE_MS} ms after start) | ${format(start.large.rssMiB)} MiB | ${format(start.small.rssMiB)} MiB |`,
      `| live heap after a full GC | ${format(start.large.heapUsedAfterGcMiB ?? Number.NaN, 1)} MiB | ${format(start.small.heapUsedAfterGcMiB ?? Number.NaN, 1)} MiB |`,
    );
    process.stdout.write(`${lines.join('\n')}\n`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main();
