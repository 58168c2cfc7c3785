/**
 * The `wsgate` command as a real process: --help, --version, `check` on valid and invalid files
 * (exit codes 0 and 2, every problem printed with file:line:col), WSGATE_CONFIG, a port already in
 * use (exit 1), and SIGTERM: live WebSockets receive 1001 and the process exits 0; a second signal
 * exits at once with 1.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { startEchoBackend } from '../helpers/backends.ts';
import { closeOf, openClient, openStubbornClient } from '../helpers/clients.ts';
import { eventually, within } from '../helpers/eventually.ts';

const CLI = fileURLToPath(new URL('../../src/cli.ts', import.meta.url));

interface Result {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

function runCli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Result> {
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

function writeConfig(t: TestContext, text: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'wsgate-cli-'));
  const file = join(dir, 'wsgate.yaml');
  writeFileSync(file, text);
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return file;
}

const validConfig = (backendUrl: string, port = 0): string => `
log: { level: info }
admin: { enabled: false }
listeners:
  public: { address: 127.0.0.1, port: ${port} }
routes:
  echo: { pool: echo }
pools:
  echo:
    backends: ["${backendUrl}"]
shutdown: { closeSpread: 0s, drainTimeout: 5s }
`;

/** Starts the gateway process and resolves with it and its listener port (from the log). */
async function startProcess(
  file: string,
): Promise<{ child: ChildProcess; port: number; output: () => string }> {
  const child = spawn(process.execPath, [CLI, '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] });
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
      const line = output.split('\n').find((entry) => entry.includes('"msg":"listening"'));
      if (line) port = (JSON.parse(line) as { port: number }).port;
      return port > 0 || child.exitCode !== null;
    },
    'the gateway process to listen',
    20_000,
  );
  assert.ok(port > 0, `the gateway started; output:\n${output}`);
  return { child, port, output: () => output };
}

test('--help and --version', async () => {
  const help = await runCli(['--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /Usage:\n {2}wsgate \[--config FILE\]/);
  assert.match(help.stdout, /wsgate check/);
  const version = await runCli(['--version']);
  assert.equal(version.code, 0);
  assert.match(version.stdout.trim(), /^\d+\.\d+\.\d+/);
});

test('an unknown command or option is a usage error (exit 2)', async () => {
  const unknown = await runCli(['frobnicate']);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /unknown command "frobnicate"/);
  const badOption = await runCli(['--nope']);
  assert.equal(badOption.code, 2);
  assert.match(badOption.stderr, /--nope/);
});

test('check: a valid config exits 0, an invalid one prints every problem and exits 2', async (t) => {
  const good = writeConfig(t, validConfig('http://127.0.0.1:9'));
  const ok = await runCli(['check', '--config', good]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /configuration is valid/);

  const bad = writeConfig(
    t,
    'listeners:\n  public: { port: 80800 }\nroutes:\n  echo: { pool: missing }\npools:\n  echo:\n    backends: ["ftp://x"]\n',
  );
  const failed = await runCli(['check', '-c', bad]);
  assert.equal(failed.code, 2);
  assert.match(failed.stderr, /wsgate\.yaml:2:\d+ listeners\.public\.port: /);
  assert.match(failed.stderr, /wsgate\.yaml:7:\d+ pools\.echo\.backends\[0\]: must be http: or https:/);
  assert.equal(failed.stdout, '');
});

test('WSGATE_CONFIG names the file when --config is absent', async (t) => {
  const good = writeConfig(t, validConfig('http://127.0.0.1:9'));
  const ok = await runCli(['check'], { WSGATE_CONFIG: good });
  assert.equal(ok.code, 0, ok.stderr);
  const missing = await runCli(['check'], { WSGATE_CONFIG: join(tmpdir(), 'no-such-wsgate.yaml') });
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /no-such-wsgate\.yaml/);
});

test('a port already in use makes the process exit 1 with a fatal log line', async (t) => {
  const blocker = createServer();
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', () => resolve()));
  t.after(() => blocker.close());
  const address = blocker.address();
  assert.ok(address && typeof address === 'object');
  const file = writeConfig(t, validConfig('http://127.0.0.1:9', address.port));
  const result = await runCli(['--config', file]);
  assert.equal(result.code, 1);
  assert.match(result.stdout, /"level":"fatal".*EADDRINUSE/);
});

test('SIGTERM drains: clients get 1001 and the process exits 0', async (t) => {
  const backend = await startEchoBackend(t);
  const file = writeConfig(t, validConfig(backend.url));
  const { child, port, output } = await startProcess(file);
  t.after(() => child.kill('SIGKILL'));
  const ws = await openClient(`ws://127.0.0.1:${port}/`);
  const closed = closeOf(ws, 10_000);
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  assert.deepEqual(await closed, { code: 1001, reason: 'gateway shutting down' });
  const [code] = await within(exited, 'the process to exit', 10_000);
  assert.equal(code, 0, output());
  assert.match(output(), /"msg":"stopped"/);
});

test('a second signal during the drain exits at once with status 1', async (t) => {
  const backend = await startEchoBackend(t);
  const file = writeConfig(t, validConfig(backend.url).replace('drainTimeout: 5s', 'drainTimeout: 60s'));
  const { child, port } = await startProcess(file);
  t.after(() => child.kill('SIGKILL'));
  // A client that never answers close frames keeps the drain going.
  const stubborn = openStubbornClient(port);
  await eventually(() => backend.sockets.length === 1, 'the tunnel is open');
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  child.kill('SIGINT');
  const [code] = await within(exited, 'the process to exit', 10_000);
  assert.equal(code, 1);
  stubborn.destroy();
});
