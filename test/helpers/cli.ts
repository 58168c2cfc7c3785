/**
 * The `wsgate` command as a real process, for tests: run it to completion, or start it as a
 * gateway and wait for its listener port in the JSON log, with config files written to a
 * temporary directory that `t.after` removes.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { eventually, within } from './eventually.ts';

export const CLI = fileURLToPath(new URL('../../src/cli.ts', import.meta.url));

export interface CliResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `wsgate ARGS` to completion. */
export function runCli(args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env } });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  return within(
    once(child, 'close').then(([code]) => ({ code: code as number | null, stdout, stderr })),
    `wsgate ${args.join(' ')}`,
    20_000,
  );
}

/** Writes `text` to a fresh wsgate.yaml, removed after the test. */
export function writeConfig(t: TestContext, text: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'wsgate-cli-'));
  const file = join(dir, 'wsgate.yaml');
  writeFileSync(file, text);
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return file;
}

/** A minimal valid config: one listener on 127.0.0.1, admin off unless `admin` is given. */
export function cliConfig(backendUrl: string, extra = ''): string {
  return `
log: { level: info }
admin: { enabled: false }
listeners:
  public: { address: 127.0.0.1, port: 0 }
routes:
  echo: { pool: echo }
pools:
  echo:
    backends: ["${backendUrl}"]
${extra}`;
}

export interface GatewayProcess {
  readonly child: ChildProcess;
  readonly port: number;
  /** Everything the process wrote so far, stdout and stderr. */
  readonly output: () => string;
  /** The parsed JSON log lines written so far. */
  readonly lines: () => Record<string, unknown>[];
}

/** Parses the JSON lines of `output`, skipping anything else. */
export function jsonLines(output: string): Record<string, unknown>[] {
  return output
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

/** Starts `wsgate --config FILE` and resolves once it listens (killed with SIGKILL after the test). */
export async function startCliGateway(
  t: TestContext,
  file: string,
  env: NodeJS.ProcessEnv = {},
): Promise<GatewayProcess> {
  const child = spawn(process.execPath, [CLI, '--config', file], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  t.after(() => child.kill('SIGKILL'));
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  let port = 0;
  await eventually(
    () => {
      const listening = jsonLines(output).find((line) => line.msg === 'listening');
      if (listening) port = Number(listening.port);
      return port > 0 || child.exitCode !== null;
    },
    'the gateway process to listen',
    20_000,
  );
  assert.ok(port > 0, `the gateway started; output:\n${output}`);
  return { child, port, output: () => output, lines: () => jsonLines(output) };
}
