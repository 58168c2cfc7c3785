/**
 * `npm run demo`: two echo backends on 127.0.0.1:9001 and :9002, and wsgate in front of them on
 * config.example.yaml (listener 127.0.0.1:8080, admin 127.0.0.1:8410). It checks one round trip
 * through the gateway, prints where to connect, and stops everything on Ctrl-C.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { WebSocket } from 'ws';
import { NODE_FLAGS } from '../src/runtime-flags.ts';
import { startDemoBackend } from './echo-backend.ts';

const root = fileURLToPath(new URL('..', import.meta.url));

async function waitForGateway(url: string, deadline: number): Promise<string> {
  for (;;) {
    try {
      return await new Promise<string>((resolve, reject) => {
        const ws = new WebSocket(url);
        ws.once('open', () => ws.send('hello from the demo'));
        ws.once('message', (data) => {
          ws.close(1000);
          resolve(data.toString());
        });
        ws.once('error', reject);
      });
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
}

async function main(): Promise<void> {
  let backends: Awaited<ReturnType<typeof startDemoBackend>>[];
  try {
    backends = [await startDemoBackend('echo-a', 9001), await startDemoBackend('echo-b', 9002)];
  } catch (error) {
    console.error(`demo: cannot start the echo backends on ports 9001/9002: ${String(error)}`);
    process.exit(1);
  }
  const gateway = spawn(process.execPath, [...NODE_FLAGS, 'src/cli.ts', '--config', 'config.example.yaml'], {
    cwd: root,
    stdio: ['ignore', 'inherit', 'inherit'],
    // Its own process group: Ctrl-C reaches only the demo, which asks the gateway to drain once
    // (a second signal would make the gateway exit at once).
    detached: true,
    env: { ...process.env, WSGATE_LOG_FORMAT: process.env.WSGATE_LOG_FORMAT ?? 'pretty' },
  });
  let stopping = false;
  // Every signal is handled (Ctrl-C under npm arrives twice: from the terminal and from npm);
  // the gateway is asked to drain once.
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    gateway.kill('SIGTERM');
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  process.once('exit', () => gateway.kill('SIGKILL'));
  gateway.once('exit', (code) => {
    for (const server of backends) server.close();
    process.exit(code ?? 0);
  });
  try {
    const reply = await waitForGateway('ws://127.0.0.1:8080/echo', Date.now() + 15_000);
    console.log(`
wsgate demo is running (self-check through the gateway answered: "${reply}")

  WebSocket:  ws://127.0.0.1:8080/echo      e.g.  npx wscat -c ws://127.0.0.1:8080/echo
  Browser:    http://127.0.0.1:8080/        a page served through the gateway that opens a WebSocket
  Metrics:    http://127.0.0.1:8410/metrics      Health: /healthz  Ready: /readyz

Backends echo-a (127.0.0.1:9001) and echo-b (127.0.0.1:9002) take turns. Ctrl-C drains and stops.
`);
  } catch (error) {
    console.error(`demo: the gateway did not answer on ws://127.0.0.1:8080: ${String(error)}`);
    stop();
    await once(gateway, 'exit');
  }
}

await main();
