/**
 * Handshakes as fast as a proxy takes them: `concurrency` loops, each opening a connection with a
 * checked handshake (load-client.ts), sending a close frame and waiting for the proxy to close
 * the connection, then starting the next. A warm-up, then a measured window bounded in time and
 * count; `sample` is taken at its exact start and end (the proxy's CPU time). Failures are
 * counted by kind, never thrown.
 */
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { type Failures, HandshakeError, handshake } from './load-client.ts';
import { clientFrame, OPCODE_CLOSE } from './ws-protocol.ts';

export interface HandshakeLoadOptions<S> {
  readonly host: string;
  readonly port: number;
  readonly concurrency: number;
  readonly warmupMs: number;
  readonly windowMs: number;
  readonly maxHandshakes: number;
  readonly sample: () => S;
}

export interface HandshakeLoadResult<S> {
  readonly handshakes: number;
  readonly seconds: number;
  readonly failures: Failures;
  readonly start: S;
  readonly end: S;
}

const CLOSE_WAIT_MS = 5_000;

/** One connection: handshake, close frame, wait for the close. True when it completed. */
async function oneHandshake(host: string, port: number, failures: Failures): Promise<boolean> {
  try {
    const { socket } = await handshake(host, port, 10_000);
    socket.on('error', () => undefined);
    socket.resume();
    const closed = once(socket, 'close').then(() => true);
    socket.end(clientFrame(OPCODE_CLOSE, Buffer.from([0x03, 0xe8]), randomBytes(4)));
    const done = await Promise.race([closed, sleep(CLOSE_WAIT_MS, false)]);
    if (!done) {
      failures['close-timeout'] = (failures['close-timeout'] ?? 0) + 1;
      socket.destroy();
    }
    return done;
  } catch (error) {
    const kind = error instanceof HandshakeError ? error.kind : 'connect';
    failures[kind] = (failures[kind] ?? 0) + 1;
    return false;
  }
}

export async function handshakeLoad<S>(options: HandshakeLoadOptions<S>): Promise<HandshakeLoadResult<S>> {
  const failures: Failures = {};
  let completed = 0;
  let running = true;
  const loop = async (): Promise<void> => {
    while (running) {
      if (await oneHandshake(options.host, options.port, failures)) completed++;
    }
  };
  const loops = Array.from({ length: options.concurrency }, loop);
  await sleep(options.warmupMs);
  const start = options.sample();
  const first = completed;
  const t0 = performance.now();
  const stopAt = t0 + options.windowMs;
  while (performance.now() < stopAt && completed - first < options.maxHandshakes) await sleep(5);
  const end = options.sample();
  const seconds = (performance.now() - t0) / 1000;
  const handshakes = completed - first;
  running = false;
  await Promise.race([Promise.all(loops), sleep(CLOSE_WAIT_MS + 11_000)]);
  return { handshakes, seconds, failures, start, end };
}
