/**
 * Signals and the command line, on a real process: SIGHUP and `wsgate reload` load the file again
 * (an invalid one changes nothing, and live connections stay up either way), as does a change of
 * the file with `reload.watch`; SIGTERM waits `shutdown.drainDelay`
 * with readiness failed while SIGINT drains at once; a gateway started by npm drains and exits
 * when the npm process that started it is gone (npm's shell does not pass signals on); an
 * unknown option prints the usage and exits 2 in the gateway's own words.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { closedPort, startEchoBackend } from '../helpers/backends.ts';
import { CLI, cliConfig, jsonLines, runCli, startCliGateway, writeConfig } from '../helpers/cli.ts';
import { closeOf, nextMessage, openClient } from '../helpers/clients.ts';
import { eventually, within } from '../helpers/eventually.ts';

function readyStatus(port: number): Promise<number> {
  return within(
    new Promise((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path: '/readyz', agent: false }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.end();
    }),
    'GET /readyz',
  );
}

test('SIGHUP and `wsgate reload` load the file again; an invalid file changes nothing; connections stay up', async (t) => {
  const backend = await startEchoBackend(t);
  // An address no other test binds, so the port picked stays this test's.
  const adminPort = await closedPort();
  const admin = `admin: { address: 127.0.0.78, port: ${adminPort} }`;
  const config = (routes: string) =>
    cliConfig(backend.url)
      .replace('admin: { enabled: false }', admin)
      .replace('echo: { pool: echo }', routes);
  const file = writeConfig(t, config('echo: { pool: echo }'));
  const gateway = await startCliGateway(t, file);
  const ws = await openClient(`ws://127.0.0.1:${gateway.port}/`);
  // `wsgate reload`: the route moves to /moved; the WebSocket opened on / stays up.
  writeFileSync(file, config('echo: { path: /moved, pool: echo }'));
  const reloaded = await runCli(['reload', '--config', file]);
  assert.equal(reloaded.code, 0, reloaded.stderr);
  assert.match(reloaded.stdout, /configuration [0-9a-f]{16} in force/);
  await assert.rejects(openClient(`ws://127.0.0.1:${gateway.port}/`), /unexpected response 404/);
  const moved = await openClient(`ws://127.0.0.1:${gateway.port}/moved`);
  ws.send('still there?');
  assert.equal((await nextMessage(ws)).data.toString(), 'still there?', 'the tunnel still works');
  // SIGHUP with an invalid file: logged with its place, nothing changes.
  writeFileSync(file, config('echo: { path: /moved, pool: nowhere }'));
  gateway.child.kill('SIGHUP');
  await eventually(
    () =>
      gateway
        .lines()
        .some(
          (line) => String(line.msg).includes('reload refused') && String(line.err).includes('wsgate.yaml:'),
        ),
    'the refusal, with the file and line, in the log',
  );
  const refused = await runCli(['reload', '--config', file]);
  assert.equal(refused.code, 2, 'an invalid file is reported by `wsgate reload` itself');
  assert.match(refused.stderr, /wsgate\.yaml:\d+:\d+ routes\.echo\.pool/);
  moved.send('routes as before');
  assert.equal((await nextMessage(moved)).data.toString(), 'routes as before');
  assert.equal(gateway.child.exitCode, null, 'the process is still running');
  const closed = [closeOf(ws, 10_000), closeOf(moved, 10_000)];
  const exited = once(gateway.child, 'exit');
  gateway.child.kill('SIGTERM');
  for (const close of await Promise.all(closed)) assert.equal(close.code, 1001);
  assert.equal((await within(exited, 'the process to exit', 10_000))[0], 0);
});

test('`wsgate reload` with no gateway answering says so and exits 1', async (t) => {
  const port = await closedPort();
  const file = writeConfig(
    t,
    cliConfig('http://127.0.0.1:1').replace(
      'admin: { enabled: false }',
      `admin: { address: 127.0.0.78, port: ${port} }`,
    ),
  );
  const result = await runCli(['reload', '--config', file]);
  assert.equal(result.code, 1);
  assert.match(result.stderr, /no gateway answers at http:\/\/127\.0\.0\.78:\d+\/reload/);
});

/**
 * A directory laid out as the kubelet mounts a ConfigMap: the file is a symlink through `..data`,
 * itself a symlink to a versioned directory; an update writes a new version and swaps `..data`.
 */
class ConfigMapVolume {
  readonly dir: string;
  #version = 0;

  constructor(t: TestContext) {
    this.dir = mkdtempSync(join(tmpdir(), 'wsgate-configmap-'));
    t.after(() => rmSync(this.dir, { recursive: true, force: true }));
  }

  get file(): string {
    return join(this.dir, 'wsgate.yaml');
  }

  publish(text: string): void {
    const version = `..2026_12_03_${++this.#version}`;
    mkdirSync(join(this.dir, version));
    writeFileSync(join(this.dir, version, 'wsgate.yaml'), text);
    symlinkSync(version, join(this.dir, '..data_tmp'));
    renameSync(join(this.dir, '..data_tmp'), join(this.dir, '..data'));
    if (this.#version === 1) symlinkSync('..data/wsgate.yaml', this.file);
  }
}

test('with reload.watch, ConfigMap updates (symlink swaps) are put in force; the same bytes again reload nothing', async (t) => {
  const backend = await startEchoBackend(t);
  // A long poll: what is seen within the test is seen by the directory watch.
  const config = (routes: string) =>
    cliConfig(backend.url, 'reload: { watch: true, checkInterval: 1h }\n')
      .replace('log: { level: info }', 'log: { level: debug }')
      .replace('echo: { pool: echo }', routes);
  const volume = new ConfigMapVolume(t);
  volume.publish(config('echo: { pool: echo }'));
  const gateway = await startCliGateway(t, volume.file);
  const reloads = () => gateway.lines().filter((line) => line.msg === 'configuration reloaded').length;
  const unchanged = () =>
    gateway.lines().filter((line) => line.msg === 'the configuration file is unchanged').length;
  volume.publish(config('echo: { path: /watched, pool: echo }'));
  await eventually(() => reloads() === 1, 'the reload after the swap');
  const ws = await openClient(`ws://127.0.0.1:${gateway.port}/watched`);
  // The same bytes published again: the watch looks and reloads nothing.
  const looksBefore = unchanged();
  volume.publish(config('echo: { path: /watched, pool: echo }'));
  await eventually(() => unchanged() > looksBefore, 'the look at the same bytes');
  assert.equal(reloads(), 1, 'identical bytes reload nothing');
  // A second update: seen the same way.
  volume.publish(config('echo: { path: /updated, pool: echo }'));
  await eventually(() => reloads() === 2, 'the reload after the second swap');
  (await openClient(`ws://127.0.0.1:${gateway.port}/updated`)).close();
  ws.send('kept');
  assert.equal((await nextMessage(ws)).data.toString(), 'kept', 'the WebSocket opened before stays up');
  const closed = closeOf(ws, 10_000);
  const exited = once(gateway.child, 'exit');
  gateway.child.kill('SIGTERM');
  assert.equal((await closed).code, 1001);
  assert.equal((await within(exited, 'the process to exit', 10_000))[0], 0);
});

test('SIGTERM keeps serving for the drain delay with readiness failed; SIGINT drains at once', async (t) => {
  const backend = await startEchoBackend(t);
  const config = cliConfig(backend.url)
    .replace('admin: { enabled: false }', 'admin: { address: 127.0.0.1, port: 0 }')
    .concat('shutdown: { drainDelay: 30s, drainTimeout: 40s, closeSpread: 0s }\n');
  const file = writeConfig(t, config);
  const adminPort = (lines: Record<string, unknown>[]): number =>
    Number(lines.find((line) => line.msg === 'admin listening')?.port ?? 0);

  const terminated = await startCliGateway(t, file);
  await eventually(() => adminPort(terminated.lines()) > 0, 'the admin server to listen');
  const ws = await openClient(`ws://127.0.0.1:${terminated.port}/`);
  terminated.child.kill('SIGTERM');
  await eventually(
    async () => (await readyStatus(adminPort(terminated.lines()))) === 503,
    'readiness to fail',
  );
  ws.send('during the delay');
  assert.equal((await nextMessage(ws)).data.toString(), 'during the delay', 'tunnels still work');
  const late = await openClient(`ws://127.0.0.1:${terminated.port}/late`);
  late.terminate();
  ws.terminate();

  const interrupted = await startCliGateway(t, file);
  const client = await openClient(`ws://127.0.0.1:${interrupted.port}/`);
  const closed = closeOf(client, 10_000);
  const exited = once(interrupted.child, 'exit');
  interrupted.child.kill('SIGINT');
  assert.equal((await closed).code, 1001, 'SIGINT closes tunnels without the 30 s delay');
  assert.equal((await within(exited, 'the process to exit', 10_000))[0], 0);
});

test('regression: a gateway started by npm drains and exits when npm is gone', async (t) => {
  const backend = await startEchoBackend(t);
  const file = writeConfig(t, cliConfig(backend.url));
  // A stand-in for npm: starts the gateway as its child (with npm's environment), reports the
  // gateway's pid, then is killed without a chance to pass anything on.
  const launcher = spawn(
    process.execPath,
    [
      '-e',
      `const { spawn } = require('node:child_process');
       const child = spawn(process.execPath, ${JSON.stringify([CLI, '--config', file])}, { stdio: 'inherit', env: { ...process.env, npm_command: 'exec' } });
       console.log(JSON.stringify({ gatewayPid: child.pid }));
       setInterval(() => {}, 1000);`,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  t.after(() => launcher.kill('SIGKILL'));
  let output = '';
  launcher.stdout.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  await eventually(
    () => jsonLines(output).some((line) => line.msg === 'listening'),
    'the gateway to listen',
    20_000,
  );
  const gatewayPid = Number(jsonLines(output).find((line) => line.gatewayPid)?.gatewayPid);
  t.after(() => {
    try {
      process.kill(gatewayPid, 'SIGKILL');
    } catch {
      // already gone
    }
  });
  const port = Number(jsonLines(output).find((line) => line.msg === 'listening')?.port);
  const ws = await openClient(`ws://127.0.0.1:${port}/`);
  const closed = closeOf(ws, 10_000);
  launcher.kill('SIGKILL');
  assert.equal((await closed).code, 1001, 'the orphaned gateway drains');
  const alive = (): boolean => {
    try {
      process.kill(gatewayPid, 0);
      return true;
    } catch {
      return false;
    }
  };
  await eventually(() => !alive(), 'the orphaned gateway to exit', 10_000);
});

test('an unknown option prints the usage and exits 2', async () => {
  for (const args of [['--nope'], ['--config'], ['--help=yes'], ['-x']]) {
    const result = await runCli(args);
    assert.equal(result.code, 2, `${args.join(' ')}: exit 2`);
    assert.match(
      result.stderr,
      /^wsgate: (unknown option|.* needs a value|.* takes no value)/,
      `${args.join(' ')}: our message`,
    );
    assert.match(result.stderr, /Usage:/, `${args.join(' ')}: the usage follows`);
    assert.doesNotMatch(
      result.stderr,
      /To specify a positional argument/,
      `${args.join(' ')}: not Node's message`,
    );
  }
});

test('regression: a Ctrl-C delivered twice at once (terminal and npm) drains instead of exiting 1', async (t) => {
  const backend = await startEchoBackend(t);
  const gateway = await startCliGateway(t, writeConfig(t, cliConfig(backend.url)));
  const ws = await openClient(`ws://127.0.0.1:${gateway.port}/`);
  const closed = closeOf(ws, 10_000);
  const exited = once(gateway.child, 'exit');
  gateway.child.kill('SIGINT');
  gateway.child.kill('SIGINT');
  assert.equal((await closed).code, 1001, 'clients get 1001, not 1006');
  assert.equal((await within(exited, 'the process to exit', 10_000))[0], 0, gateway.output());
});

test('Ctrl-C during the drain delay starts the drain instead of exiting 1', async (t) => {
  const backend = await startEchoBackend(t);
  const config = cliConfig(backend.url).concat(
    'shutdown: { drainDelay: 30s, drainTimeout: 40s, closeSpread: 0s }\n',
  );
  const gateway = await startCliGateway(t, writeConfig(t, config));
  const ws = await openClient(`ws://127.0.0.1:${gateway.port}/`);
  const closed = closeOf(ws, 10_000);
  const exited = once(gateway.child, 'exit');
  gateway.child.kill('SIGTERM');
  await eventually(
    () => gateway.lines().some((line) => line.msg === 'not ready; serving until the drain starts'),
    'the delay',
  );
  gateway.child.kill('SIGINT');
  assert.equal((await closed).code, 1001, 'the drain closes the tunnel with 1001');
  assert.equal((await within(exited, 'the process to exit', 10_000))[0], 0, gateway.output());
});
