/**
 * The `wsgate` command as a real process: --help, --version, `check` on valid and invalid files
 * (exit codes 0 and 2, every problem printed with file:line:col), WSGATE_CONFIG, a port already in
 * use (exit 1), and SIGTERM: live WebSockets receive 1001 and the process exits 0; a second signal
 * exits at once with 1.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { startEchoBackend } from '../helpers/backends.ts';
import { cliConfig, runCli, startCliGateway, writeConfig } from '../helpers/cli.ts';
import { closeOf, openClient, openStubbornClient } from '../helpers/clients.ts';
import { eventually, within } from '../helpers/eventually.ts';

const validConfig = (backendUrl: string, port = 0): string =>
  cliConfig(backendUrl, 'shutdown: { closeSpread: 0s, drainTimeout: 5s }\n').replace(
    'port: 0 }',
    `port: ${port} }`,
  );

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
  assert.match(
    result.stdout,
    /listener \\"public\\" cannot listen on 127\.0\.0\.1:\d+: EADDRINUSE/,
    'names the listener',
  );
});

test('SIGTERM drains: clients get 1001 and the process exits 0', async (t) => {
  const backend = await startEchoBackend(t);
  const file = writeConfig(t, validConfig(backend.url));
  const { child, port, output } = await startCliGateway(t, file);
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
  const { child, port } = await startCliGateway(t, file);
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
