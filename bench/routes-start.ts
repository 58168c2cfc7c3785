/**
 * Starts one gateway on a configuration file, the way `wsgate --config FILE` does, and prints
 * what that cost as one JSON line: the time to load the file, the time to build and start the
 * gateway, and the process's memory once it has been idle for a while. `routes-bench.ts` runs it
 * in a fresh process so that the memory is the gateway's alone.
 *
 *   node --expose-gc bench/routes-start.ts FILE [IDLE_MS]
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { loadConfigFile } from '../src/config/load.ts';
import { createGateway } from '../src/gateway.ts';
import { createLogger } from '../src/observability/logger.ts';

/** What one start cost. */
export interface StartFigures {
  readonly loadMs: number;
  readonly startMs: number;
  /** Resident set size after IDLE_MS of idling, before any forced collection. */
  readonly rssMiB: number;
  /** Resident set size and live heap after a full garbage collection (when --expose-gc is given). */
  readonly rssAfterGcMiB: number | undefined;
  readonly heapUsedAfterGcMiB: number | undefined;
}

const MiB = 1024 * 1024;

async function main(file: string, idleMs: number): Promise<StartFigures> {
  const loadStart = performance.now();
  const config = loadConfigFile(file);
  const loaded = performance.now();
  const log = createLogger({ level: 'warn', format: 'json' });
  const gateway = createGateway(config, { log, version: 'bench' });
  await gateway.start();
  const started = performance.now();
  await sleep(idleMs);
  const rssMiB = process.memoryUsage.rss() / MiB;
  let rssAfterGcMiB: number | undefined;
  let heapUsedAfterGcMiB: number | undefined;
  const { gc } = globalThis;
  if (gc) {
    gc();
    await sleep(100);
    rssAfterGcMiB = process.memoryUsage.rss() / MiB;
    heapUsedAfterGcMiB = process.memoryUsage().heapUsed / MiB;
  }
  await gateway.shutdown();
  return {
    loadMs: loaded - loadStart,
    startMs: started - loaded,
    rssMiB,
    rssAfterGcMiB,
    heapUsedAfterGcMiB,
  };
}

const [file, idle] = process.argv.slice(2);
if (file === undefined) {
  process.stderr.write('usage: node --expose-gc bench/routes-start.ts FILE [IDLE_MS]\n');
  process.exitCode = 2;
} else {
  const figures = await main(file, Number(idle ?? 2000));
  process.stdout.write(`${JSON.stringify(figures)}\n`);
}
