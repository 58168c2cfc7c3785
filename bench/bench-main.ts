/**
 * What every benchmark program shares around its run: this process (the load client) pinned to
 * CPU 1 when it can be, a scratch directory (created by run.sh so that it can remove it even after
 * a crash), a Registry of started processes stopped on exit and on SIGINT/SIGTERM/SIGHUP, the
 * exit code of the run, where bench/ and its checkout are, and the reports written to results/.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Registry } from './targets.ts';

/** bench/, and the checkout it belongs to (the wsgate a benchmark runs). */
export const BENCH_DIR = dirname(fileURLToPath(import.meta.url));
export const ROOT_DIR = dirname(BENCH_DIR);
/** Where reports go (not tracked). */
export const RESULTS_DIR = join(BENCH_DIR, 'results');

/** Writes each report (file name -> text) into results/. */
export function saveResults(files: Readonly<Record<string, string>>): void {
  mkdirSync(RESULTS_DIR, { recursive: true });
  for (const [name, text] of Object.entries(files)) writeFileSync(join(RESULTS_DIR, name), text);
}

/** CPUs available before this process pins itself to CPU 1. */
export const NPROC_AT_START = availableParallelism();

export function log(message: string): void {
  process.stderr.write(`${message}\n`);
}

/** A comma-separated list of integers in 1..max from option `--name`; exits with a usage error otherwise. */
export function integerList(text: string, name: string, max: number): number[] {
  return text.split(',').map((part) => {
    const value = Number(part.trim());
    if (!Number.isInteger(value) || value < 1 || value > max) {
      process.stderr.write(`--${name}: every value must be an integer in 1..${max}\n`);
      process.exit(2);
    }
    return value;
  });
}

export function commandExists(command: string, args: readonly string[]): boolean {
  const result = spawnSync(command, args, { stdio: 'ignore', timeout: 5000 });
  return result.error === undefined && result.status === 0;
}

/** Runs `run` with a registry and a scratch directory, then stops everything and exits with its code. */
export async function benchMain(
  pin: boolean,
  run: (registry: Registry, workDir: string) => Promise<number>,
): Promise<void> {
  let pinning = false;
  if (pin && NPROC_AT_START >= 2 && commandExists('taskset', ['-V'])) {
    // the load client is this process: all of its threads go to CPU 1
    pinning = commandExists('taskset', ['-a', '-p', '-c', '1', String(process.pid)]);
  }
  const workDir = process.env.WSGATE_BENCH_WORKDIR || mkdtempSync(join(tmpdir(), 'wsgate-bench-'));
  mkdirSync(workDir, { recursive: true });
  const registry = new Registry(pinning, process.env.WSGATE_BENCH_PIDFILE);
  let finishing = false;
  const cleanUp = async (code: number): Promise<never> => {
    finishing = true;
    await registry.stopAll();
    rmSync(workDir, { recursive: true, force: true });
    process.exit(code);
  };
  process.on('exit', () => registry.killAllNow());
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(signal, () => {
      if (finishing) return;
      log(`\n${signal}: stopping everything started`);
      void cleanUp(130);
    });
  }
  let code = 2;
  try {
    code = await run(registry, workDir);
  } catch (error) {
    log(`benchmark failed: ${error instanceof Error ? error.message : String(error)}`);
  }
  if (!finishing) await cleanUp(code);
}
