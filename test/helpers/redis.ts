/**
 * A real redis-server for a test (Debian's), on 127.0.0.1 with a free port, no persistence, its
 * data in a temporary directory; it can be stopped, frozen (SIGSTOP) and started again on the same
 * port (empty), and queried with a client of its own. It starts as a Redis the gateways have long
 * counted in (the marker of src/limits/redis-scripts.ts set), unless asked to start fresh. Tests
 * skip (with the reason) where none is installed.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { createClient } from '@redis/client';

/** Why no Redis can be started here, or false when it can (for `test(name, { skip })`). */
export function redisMissing(): string | false {
  const found = spawnSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' }).stdout.trim();
  return found === '' ? 'redis-server is not installed (apt-get install redis-server)' : false;
}

export interface RedisOptions {
  /** Clients must send this password (`requirepass`). */
  readonly password?: string;
  /** Serve TLS only, with this certificate, key and CA (files). */
  readonly tls?: { readonly cert: string; readonly key: string; readonly ca: string };
  /**
   * Start as a Redis that has never counted (the first gateway rebuilds the counts). By default it
   * starts as one that has been counting for long, with the marker under these key prefixes set.
   */
  readonly fresh?: boolean;
  readonly keyPrefixes?: readonly string[];
}

export interface TestRedis {
  readonly port: number;
  /** `redis://127.0.0.1:PORT` (or `rediss://localhost:PORT` with TLS). */
  readonly url: string;
  /** Kills the server (SIGKILL) and waits for it to exit: everything it held is gone. */
  stop(): Promise<void>;
  /** Starts it again on the same port, empty. */
  start(): Promise<void>;
  /** Freezes the server (SIGSTOP): connections stay open, nothing is answered. */
  freeze(): void;
  thaw(): void;
  /** One command, on a client of the test's own. */
  command(args: readonly string[]): Promise<unknown>;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

export async function startRedis(t: TestContext, options: RedisOptions = {}): Promise<TestRedis> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'wsgate-redis-'));
  let child: ChildProcess | undefined;
  const args = ['--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir];
  if (options.password) args.push('--requirepass', options.password);
  if (options.tls) {
    args.push('--port', '0', '--tls-port', String(port), '--tls-auth-clients', 'no');
    args.push('--tls-cert-file', options.tls.cert, '--tls-key-file', options.tls.key);
    args.push('--tls-ca-cert-file', options.tls.ca);
  } else {
    args.push('--port', String(port));
  }
  const start = async (): Promise<void> => {
    const started = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    child = started;
    let output = '';
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`redis-server did not start:\n${output}`)), 10_000);
      const seen = (chunk: Buffer): void => {
        output += chunk.toString();
        if (output.includes('Ready to accept connections')) {
          clearTimeout(timer);
          resolve();
        }
      };
      started.stdout?.on('data', seen);
      started.stderr?.on('data', seen);
      started.once('exit', () => {
        clearTimeout(timer);
        reject(new Error(`redis-server exited:\n${output}`));
      });
    });
    started.stdout?.resume();
    started.stderr?.resume();
  };
  const stop = async (): Promise<void> => {
    const running = child;
    child = undefined;
    if (running === undefined || running.exitCode !== null) return;
    const exited = new Promise((resolve) => running.once('exit', resolve));
    running.kill('SIGCONT');
    running.kill('SIGKILL');
    await exited;
  };
  await start();
  const url = options.tls ? `rediss://localhost:${port}` : `redis://127.0.0.1:${port}`;
  const client = createClient({
    socket: options.tls
      ? { host: 'localhost', port, tls: true, ca: readFileSync(options.tls.ca), reconnectStrategy: 50 }
      : { host: '127.0.0.1', port, reconnectStrategy: 50 },
    ...(options.password ? { password: options.password } : {}),
  });
  client.on('error', () => {});
  t.after(async () => {
    client.destroy();
    await stop();
    rmSync(dir, { recursive: true, force: true });
  });
  const command = async (args: readonly string[]): Promise<unknown> => {
    if (!client.isOpen) await client.connect();
    return client.sendCommand([...args]);
  };
  if (!options.fresh)
    for (const prefix of options.keyPrefixes ?? ['wsgate:'])
      await command(['SET', `${prefix}counting-since`, '0']);
  return {
    port,
    url,
    stop,
    start,
    freeze: () => child?.kill('SIGSTOP'),
    thaw: () => child?.kill('SIGCONT'),
    command,
  };
}
