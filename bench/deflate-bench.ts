/**
 * What counting inflated sizes costs: wsgate's CPU time per 1,000 compressed messages with the
 * message size limit on (every compressed message inflated and counted, both directions) against
 * the same gateway with it off, in one run, rounds interleaved. Client, backend and gateway all
 * negotiate permessage-deflate (with context takeover), so the traffic stays compressed end to
 * end; the gateway never recompresses, it only inflates to count.
 *
 *   node_modules/.bin/node bench/deflate-bench.ts [--rounds 3] [--connections 20] [--window-ms 3000]
 *
 * Prints a Markdown report and writes bench/results/deflate-latest.md.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { WebSocket, WebSocketServer } from 'ws';
import { ROOT_DIR, saveResults } from './bench-main.ts';
import { clockTicksPerSecond, cpuSample, processTree } from './proc.ts';
import { freePort, HOST, Registry, waitReady, wsgateConfig } from './targets.ts';

/** A chat-like JSON message of about 2 KiB that compresses well, as real ones do. */
const MESSAGE = JSON.stringify({
  type: 'chat.message',
  room: 'general',
  items: Array.from({ length: 24 }, (_, i) => ({
    id: i,
    user: `user-${i % 7}`,
    text: 'hello there, how is it going',
  })),
});

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    connections: { type: 'string', default: '20' },
    'window-ms': { type: 'string', default: '3000' },
  },
});
const rounds = Number(values.rounds);
const connections = Number(values.connections);
const windowMs = Number(values['window-ms']);

/** The size limit on both ways (every compressed message inflated and counted) or off. */
function config(port: number, backendPort: number, counting: boolean): string {
  const limit = counting ? '16MiB' : '"off"';
  return wsgateConfig(
    port,
    backendPort,
    `websocket:\n  maxMessageSize: { clientToBackend: ${limit}, backendToClient: ${limit} }\n  keepalive: { client: "off" }\n`,
  );
}

/** A compressing echo backend in this process (its CPU is not the gateway's). */
async function startDeflateEcho(): Promise<{ port: number; close: () => void }> {
  const server = new WebSocketServer({ host: HOST, port: 0, perMessageDeflate: { threshold: 0 } });
  server.on('connection', (socket) =>
    socket.on('message', (data, isBinary) => socket.send(data, { binary: isBinary })),
  );
  await new Promise((resolve) => server.once('listening', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('unexpected address');
  return { port: address.port, close: () => server.close() };
}

/** Ping-pongs MESSAGE on each connection for `ms`; returns the round trips completed. */
async function load(port: number, ms: number, onStart: () => void): Promise<number> {
  const sockets = await Promise.all(
    Array.from(
      { length: connections },
      () =>
        new Promise<WebSocket>((resolve, reject) => {
          const ws = new WebSocket(`ws://${HOST}:${port}/`, { perMessageDeflate: { threshold: 0 } });
          ws.once('open', () => resolve(ws));
          ws.once('error', reject);
        }),
    ),
  );
  let count = 0;
  let running = true;
  // Warm-up, then the measured window.
  for (const ws of sockets) {
    ws.on('message', () => {
      if (running) count++;
      if (running) ws.send(MESSAGE);
    });
    ws.send(MESSAGE);
  }
  await sleep(500);
  count = 0;
  onStart();
  await sleep(ms);
  const done = count;
  running = false;
  for (const ws of sockets) ws.terminate();
  return done;
}

interface Run {
  readonly counting: boolean;
  readonly messages: number;
  readonly cpuMsPer1k: number;
}

async function main(): Promise<void> {
  const workDir = mkdtempSync(join(tmpdir(), 'wsgate-deflate-bench-'));
  const registry = new Registry(false, undefined);
  const backend = await startDeflateEcho();
  const runs: Run[] = [];
  const ticksPerSecond = clockTicksPerSecond();
  try {
    for (let round = 0; round < rounds; round++) {
      for (const counting of round % 2 === 0 ? [true, false] : [false, true]) {
        const port = await freePort();
        const file = join(workDir, `wsgate-${round}-${counting}.yaml`);
        writeFileSync(file, config(port, backend.port, counting));
        const managed = registry.start(
          'wsgate',
          process.execPath,
          [join(ROOT_DIR, 'src', 'cli.ts'), '--config', file],
          0,
          join(workDir, 'wsgate.log'),
          { ...process.env, NODE_ENV: 'production' },
        );
        await waitReady(managed, port);
        let before = cpuSample([managed.pid]);
        const messages = await load(port, windowMs, () => {
          before = cpuSample(processTree(managed.pid));
        });
        const after = cpuSample(processTree(managed.pid));
        await registry.stop(managed);
        const cpuMs = ((after.ticks - before.ticks) / ticksPerSecond) * 1000;
        const run = { counting, messages, cpuMsPer1k: messages > 0 ? (cpuMs / messages) * 1000 : Number.NaN };
        runs.push(run);
        process.stderr.write(
          `round ${round + 1} ${counting ? 'counting' : 'not counting'}: ${messages} messages, ${run.cpuMsPer1k.toFixed(1)} ms CPU per 1k\n`,
        );
      }
    }
  } finally {
    backend.close();
    await registry.stopAll();
    rmSync(workDir, { recursive: true, force: true });
  }
  const median = (list: number[]): number => {
    const sorted = [...list].sort((a, b) => a - b);
    return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
  };
  const on = median(runs.filter((run) => run.counting).map((run) => run.cpuMsPer1k));
  const off = median(runs.filter((run) => !run.counting).map((run) => run.cpuMsPer1k));
  const report = [
    '# wsgate permessage-deflate counting benchmark',
    '',
    `- ${connections} connections ping-ponging a ${MESSAGE.length}-byte JSON text message, compressed end to end`,
    `  (client, gateway and backend negotiate permessage-deflate with context takeover); ${rounds} rounds of ${windowMs / 1000} s, median.`,
    '- Gateway CPU time (utime+stime of its process) per 1,000 round trips (each round trip: one',
    '  compressed message each way, both inflated and counted when counting is on).',
    '',
    '| maxMessageSize | wsgate CPU ms / 1k round trips |',
    '|---|---:|',
    `| off (bytes relayed, headers scanned) | ${off.toFixed(1)} |`,
    `| 16MiB both ways (every message inflated and counted) | ${on.toFixed(1)} |`,
    '',
    `Counting costs ${(on / off).toFixed(2)}× the CPU of relaying compressed messages without it.`,
    '',
  ].join('\n');
  process.stdout.write(report);
  saveResults({ 'deflate-latest.md': report });
}

await main();
