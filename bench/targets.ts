/**
 * Starting and stopping what the echo benchmark measures: the echo backend, nginx (generated
 * config, one worker) and wsgate (generated YAML, `src/cli.ts` on the project's Node 24). Every
 * process is started in its own process group (pinned with `taskset` when asked), recorded in a
 * registry (and in a PID file, so the calling shell can clean up after a crash), and stopped with
 * SIGTERM, then SIGKILL after a bounded wait. Readiness is a successful WebSocket handshake.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { chmodSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { NODE_FLAGS } from '../src/runtime-flags.ts';
import { handshake } from './load-client.ts';

export const HOST = '127.0.0.1';

/** A process the benchmark started, in its own process group. */
export interface Managed {
  readonly name: string;
  readonly child: ChildProcess;
  readonly pid: number;
  readonly logPath: string;
  exited: boolean;
  readonly exitedPromise: Promise<void>;
}

/** Every process started and not yet reaped; stopped on exit, on signals and by `stop`. */
export class Registry {
  private readonly live = new Set<Managed>();
  private readonly pidFile: string | undefined;
  readonly pinning: boolean;

  constructor(pinning: boolean, pidFile: string | undefined) {
    this.pinning = pinning;
    this.pidFile = pidFile;
  }

  /** Starts `command` (with `taskset -c cpu` when pinning), stdout/stderr to `logPath`. */
  start(
    name: string,
    command: string,
    args: readonly string[],
    cpu: number,
    logPath: string,
    env?: NodeJS.ProcessEnv,
  ): Managed {
    const log = openSync(logPath, 'a');
    const [file, argv] = this.pinning
      ? ['taskset', ['-c', String(cpu), command, ...args]]
      : [command, [...args]];
    const child = spawn(file, argv, {
      detached: true,
      stdio: ['ignore', log, log],
      env: env ?? process.env,
    });
    closeSync(log);
    if (child.pid === undefined) throw new Error(`cannot start ${name} (${command})`);
    let markExited: () => void = () => undefined;
    const exitedPromise = new Promise<void>((resolve) => {
      markExited = resolve;
    });
    const managed: Managed = { name, child, pid: child.pid, logPath, exited: false, exitedPromise };
    child.on('exit', () => {
      managed.exited = true;
      this.live.delete(managed);
      this.writePidFile();
      markExited();
    });
    child.on('error', () => undefined);
    this.live.add(managed);
    this.writePidFile();
    return managed;
  }

  private writePidFile(): void {
    if (this.pidFile === undefined) return;
    try {
      writeFileSync(this.pidFile, [...this.live].map((m) => `${m.pid}\n`).join(''));
    } catch {
      // the PID file is only a backstop for the calling shell
    }
  }

  /** SIGTERM to the process group, SIGKILL after `graceMs` if it has not exited. */
  async stop(managed: Managed, graceMs = 5000): Promise<void> {
    if (managed.exited) return;
    signalGroup(managed.pid, 'SIGTERM');
    const killed = await Promise.race([managed.exitedPromise.then(() => true), sleep(graceMs, false)]);
    if (!killed) {
      signalGroup(managed.pid, 'SIGKILL');
      await Promise.race([managed.exitedPromise, sleep(2000)]);
    }
    // leftovers in the group (e.g. nginx workers) go too
    signalGroup(managed.pid, 'SIGKILL');
  }

  async stopAll(): Promise<void> {
    await Promise.all([...this.live].map((managed) => this.stop(managed, 2000)));
  }

  /** Synchronous last resort (process 'exit'). */
  killAllNow(): void {
    for (const managed of this.live) signalGroup(managed.pid, 'SIGKILL');
  }
}

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // already gone
  }
}

/** A port that was free on 127.0.0.1 a moment ago (for servers that cannot report port 0). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen({ port: 0, host: HOST }, () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

function tail(path: string, lines = 15): string {
  try {
    return readFileSync(path, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

/** Waits until a WebSocket handshake through `port` succeeds (bounded in time and attempts). */
export async function waitReady(managed: Managed, port: number, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError = 'not tried';
  for (let attempt = 0; attempt < 400 && Date.now() < deadline; attempt++) {
    if (managed.exited) break;
    try {
      const { socket } = await handshake(HOST, port, 1000);
      socket.destroy();
      return;
    } catch (error) {
      lastError = error instanceof Error ? error.message : String(error);
    }
    await sleep(100);
  }
  const state = managed.exited
    ? `exited (code ${managed.child.exitCode ?? managed.child.signalCode})`
    : 'not ready';
  throw new Error(`${managed.name} ${state} after ${timeoutMs} ms: ${lastError}\n${tail(managed.logPath)}`);
}

/** The echo backend, on CPU 1, port chosen by the kernel. */
export async function startBackend(
  registry: Registry,
  benchDir: string,
  workDir: string,
): Promise<{ managed: Managed; port: number }> {
  const logPath = join(workDir, 'echo-server.log');
  const managed = registry.start(
    'echo backend',
    process.execPath,
    [join(benchDir, 'echo-server.ts')],
    1,
    logPath,
  );
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline && !managed.exited) {
    const match = /listening (\d+)/.exec(tail(logPath, 5));
    if (match !== null) return { managed, port: Number(match[1]) };
    await sleep(50);
  }
  throw new Error(`echo backend did not start:\n${tail(logPath)}`);
}

/** A proxy under test, started and ready. */
export interface RunningProxy {
  readonly managed: Managed;
  readonly port: number;
}

/** A proxy the benchmark can start; `direct` has no start function. */
export interface ProxyTarget {
  readonly name: string;
  readonly version: string;
  /** Why the target is skipped, if it is. */
  readonly skip?: string;
  /**
   * Starts the proxy; `processes` above 1 runs it as that many worker processes (wsgate's
   * `workers`, nginx's `worker_processes`), for connection counts one process's open-file limit
   * cannot hold.
   */
  start?(registry: Registry, workDir: string, backendPort: number, processes?: number): Promise<RunningProxy>;
}

export const directTarget: ProxyTarget = { name: 'direct', version: 'no proxy (client -> echo backend)' };

function nginxVersion(): string | undefined {
  const result = spawnSync('nginx', ['-v'], { encoding: 'utf8', timeout: 5000 });
  if (result.error !== undefined || result.status !== 0) return undefined;
  return `${result.stderr ?? ''}${result.stdout ?? ''}`.trim().replace(/^nginx version:\s*/, '');
}

function nginxConfig(dir: string, port: number, backendPort: number, processes: number): string {
  return `worker_processes ${processes};
daemon off;
master_process on;
pid ${dir}/nginx.pid;
error_log ${dir}/nginx-error.log warn;
worker_rlimit_nofile 50000;
events {
  worker_connections 45000;
}
http {
  access_log off;
  client_body_temp_path ${dir}/tmp-body;
  proxy_temp_path ${dir}/tmp-proxy;
  fastcgi_temp_path ${dir}/tmp-fastcgi;
  uwsgi_temp_path ${dir}/tmp-uwsgi;
  scgi_temp_path ${dir}/tmp-scgi;
  map $http_upgrade $connection_upgrade {
    default upgrade;
    '' close;
  }
  server {
    listen ${HOST}:${port} backlog=4096;
    location / {
      proxy_pass http://${HOST}:${backendPort};
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_set_header Host $host;
      proxy_read_timeout 1h;
      proxy_send_timeout 1h;
    }
  }
}
`;
}

export function nginxTarget(): ProxyTarget {
  const version = nginxVersion();
  if (version === undefined) {
    return { name: 'nginx', version: 'not installed', skip: 'nginx not found (apt-get install nginx-light)' };
  }
  return {
    name: 'nginx',
    version,
    async start(registry, workDir, backendPort, processes = 1) {
      const dir = join(workDir, `nginx-${Date.now()}`);
      mkdirSync(dir, { recursive: true });
      // workers may run as an unprivileged user
      chmodSync(dir, 0o755);
      chmodSync(workDir, 0o755);
      const port = await freePort();
      writeFileSync(join(dir, 'nginx.conf'), nginxConfig(dir, port, backendPort, processes));
      const managed = registry.start(
        'nginx',
        'nginx',
        ['-p', dir, '-e', join(dir, 'nginx-error.log'), '-c', join(dir, 'nginx.conf')],
        0,
        join(dir, 'nginx.log'),
      );
      await waitReady(managed, port);
      return { managed, port };
    },
  };
}

/** Every WebSocket limit off: the gateway only relays and scans frames. */
const LIMITS_OFF = `websocket:
  maxMessageSize: { clientToBackend: "off", backendToClient: "off" }
  keepalive: { client: "off", backend: "off" }
`;

/** Every WebSocket limit on (bench/limits-on.yaml). */
const LIMITS_ON = readFileSync(join(dirname(fileURLToPath(import.meta.url)), 'limits-on.yaml'), 'utf8');

/** The gateway's YAML for one run: every limit `on`, off, or the `websocket` block given. */
export function wsgateConfig(
  port: number,
  backendPort: number,
  limits: 'on' | 'off' | string = 'off',
  processes = 1,
): string {
  return `${processes > 1 ? `workers: ${processes}\n` : ''}log: { level: warn }
admin: { enabled: false }
listeners:
  bench: { address: ${HOST}, port: ${port} }
routes:
  echo: { path: /, pool: echo }
pools:
  echo:
    backends: [ "http://${HOST}:${backendPort}" ]
${limits === 'on' ? LIMITS_ON : limits === 'off' ? LIMITS_OFF : limits}`;
}

function gitRevision(rootDir: string): string | undefined {
  const result = spawnSync('git', ['-C', rootDir, 'rev-parse', '--short', 'HEAD'], {
    encoding: 'utf8',
    timeout: 5000,
  });
  return result.status === 0 ? result.stdout.trim() : undefined;
}

/** wsgate with every limit off (`wsgate`), on (`wsgate-limits`), or as shipped (`wsgate-defaults`). */
export function wsgateTarget(
  rootDir: string,
  nodeBinary: string,
  limits: 'on' | 'off' | 'defaults' = 'off',
): ProxyTarget {
  const name = limits === 'on' ? 'wsgate-limits' : limits === 'off' ? 'wsgate' : 'wsgate-defaults';
  const cli = join(rootDir, 'src', 'cli.ts');
  let version = '?';
  try {
    const pkg: unknown = JSON.parse(readFileSync(join(rootDir, 'package.json'), 'utf8'));
    if (typeof pkg === 'object' && pkg !== null && 'version' in pkg && typeof pkg.version === 'string') {
      version = pkg.version;
    }
  } catch {
    // keep "?"
  }
  const revision = gitRevision(rootDir);
  const fullVersion = `${version}${revision === undefined ? '' : ` (${revision})`} on node ${process.version}`;
  if (!existsSync(cli)) return { name, version: fullVersion, skip: `${cli} does not exist yet` };
  return {
    name,
    version: fullVersion,
    async start(registry, workDir, backendPort, processes = 1) {
      const port = await freePort();
      const config = join(workDir, `wsgate-${Date.now()}.yaml`);
      writeFileSync(config, wsgateConfig(port, backendPort, limits === 'defaults' ? '' : limits, processes));
      const managed = registry.start(
        'wsgate',
        nodeBinary,
        [...NODE_FLAGS, cli, '--config', config],
        0,
        join(workDir, 'wsgate.log'),
        {
          ...process.env,
          NODE_ENV: 'production',
        },
      );
      await waitReady(managed, port);
      return { managed, port };
    },
  };
}
