/**
 * Many tunnels at once, each ended a different way, chosen by a seeded generator: clean closes
 * from either side, terminations (RST) and FINs from either side, a backend that dies in the
 * middle of a frame, a backend that stops reading while its client floods it and leaves (FIN or
 * reset), a client that stops reading while its backend floods it (and leaves or stays), after messages of
 * mixed sizes (some fragmented). Whatever happens, the
 * gateway must not crash, every client must learn that its connection ended, and at the end no
 * tunnel, handshake or request may be left (the startGateway teardown checks that).
 * WSGATE_CHAOS_SEED and WSGATE_CHAOS_CONNECTIONS replay or enlarge a run.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { WebSocket } from 'ws';
import { startEchoBackend } from '../helpers/backends.ts';
import { closeOf, openClient } from '../helpers/clients.ts';
import { eventually } from '../helpers/eventually.ts';
import { startGateway } from '../helpers/gateway.ts';

/** A small deterministic generator (mulberry32), so a failure can be replayed. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const ENDINGS = [
  'client-close',
  'backend-close',
  'client-terminate',
  'backend-terminate',
  'client-fin',
  'backend-fin',
  'backend-mid-frame',
  'backend-deaf-client-leaves',
  'client-deaf-backend-floods',
] as const;
type Ending = (typeof ENDINGS)[number];

const CHUNK = Buffer.alloc(256 << 10, 1);
const SEND_TIMEOUT_MS = 1_000;

/**
 * Sends until the sender's own buffer holds a MiB, i.e. every socket buffer up to the peer that
 * stopped reading is full and the gateway holds this direction back; then calls `then`. Bounded
 * by `maxChunks`.
 */
function floodUntilBackedUp(ws: WebSocket, then: () => void, maxChunks = 256): void {
  let sent = 0;
  const step = (): void => {
    while (ws.bufferedAmount < 1 << 20 && sent < maxChunks) {
      ws.send(CHUNK, () => {});
      sent++;
    }
    if (ws.bufferedAmount >= 1 << 20 || sent >= maxChunks || ws.readyState !== ws.OPEN) then();
    else setImmediate(step);
  };
  step();
}

const SEED = Number(process.env.WSGATE_CHAOS_SEED ?? 20261122);
const CONNECTIONS = Number(process.env.WSGATE_CHAOS_CONNECTIONS ?? 120);

test(`chaos: ${CONNECTIONS} tunnels ended in random ways leave nothing behind (seed ${SEED})`, async (t) => {
  const next = random(SEED);
  const plans = new Map<string, Ending>();
  const backend = await startEchoBackend(t, {
    onConnection: (socket, req) => {
      const ending =
        plans.get(new URL(req.url ?? '/', 'http://x').searchParams.get('id') ?? '') ?? 'client-close';
      socket.on('message', (data, isBinary) => {
        const text = isBinary ? '' : data.toString();
        const raw = (socket as unknown as { _socket: import('node:net').Socket })._socket;
        if (text === 'deaf') {
          raw.pause(); // the client's flood that follows is never read
          return;
        }
        if (text === 'flood' || text === 'flood-and-stay') {
          floodUntilBackedUp(socket, () => text === 'flood' && socket.terminate());
          return;
        }
        if (text === 'end') {
          if (ending === 'backend-close') socket.close(4001, 'backend says bye');
          else if (ending === 'backend-terminate') socket.terminate();
          else if (ending === 'backend-fin') raw.end();
          else if (ending === 'backend-mid-frame') {
            // A 1000-byte binary frame announced, 10 bytes sent, then the connection dies.
            raw.write(Buffer.concat([Buffer.from([0x82, 0x7e, 0x03, 0xe8]), Buffer.alloc(10)]));
            raw.destroy();
          }
          return;
        }
        socket.send(data, { binary: isBinary });
      });
    },
  });
  const gw = await startGateway(t, {
    routes: { echo: { pool: 'echo' } },
    pools: { echo: { backends: [backend.url] } },
    tunnel: { closeTimeout: '1s', sendTimeout: `${SEND_TIMEOUT_MS}ms` },
  });
  const clients: { ws: WebSocket; ending: Ending; closed: Promise<{ code: number }> }[] = [];
  for (let i = 0; i < CONNECTIONS; i++) {
    const ending = ENDINGS[Math.floor(next() * ENDINGS.length)] ?? 'client-close';
    plans.set(String(i), ending);
    const ws = await openClient(gw.wsUrl(`/chaos?id=${i}`));
    ws.on('error', () => {});
    clients.push({ ws, ending, closed: closeOf(ws, 15_000) });
  }
  // Traffic of mixed sizes on every connection, some of it fragmented.
  for (const { ws } of clients) {
    const messages = 1 + Math.floor(next() * 4);
    for (let m = 0; m < messages; m++) {
      const size = [1, 125, 126, 65_536, 200_000][Math.floor(next() * 5)] ?? 1;
      if (next() < 0.3) {
        ws.send(Buffer.alloc(size, m), { fin: false });
        ws.send(Buffer.alloc(1, m), { fin: true });
      } else {
        ws.send(Buffer.alloc(size, m), { binary: true });
      }
    }
  }
  // Then each connection ends its own way, all at about the same time.
  for (const { ws, ending } of clients) {
    const raw = (ws as unknown as { _socket: import('node:net').Socket })._socket;
    if (ending === 'client-close') ws.close(4000, 'client says bye');
    else if (ending === 'client-terminate') ws.terminate();
    else if (ending === 'client-fin') raw.end();
    else if (ending === 'backend-deaf-client-leaves') {
      ws.send('deaf');
      // Leave while the gateway holds the flood back: half with a reset, half with a FIN.
      const reset = next() < 0.5;
      floodUntilBackedUp(ws, () => (reset ? raw.resetAndDestroy() : raw.end()));
    } else if (ending === 'client-deaf-backend-floods') {
      raw.pause();
      // Half of the backends leave after the flood, half stay until the gateway cuts the client.
      ws.send(next() < 0.5 ? 'flood' : 'flood-and-stay');
      // Read again later: by then the gateway has cut the tunnel, or (on a slow machine) the
      // backlog just drains and the client says goodbye itself.
      setTimeout(() => {
        raw.resume();
        if (ws.readyState === ws.OPEN) ws.close(4000, 'client says bye');
      }, 4 * SEND_TIMEOUT_MS).unref();
    } else ws.send('end');
  }
  const results = await Promise.all(clients.map((client) => client.closed));
  for (const [index, { code }] of results.entries()) {
    const ending = clients[index]?.ending;
    if (ending === 'backend-close') assert.equal(code, 4001, `connection ${index} (${ending})`);
    if (ending === 'client-close') assert.equal(code, 4000, `connection ${index} (${ending})`);
    if (ending === 'backend-terminate' || ending === 'backend-fin') {
      assert.ok(code === 1014 || code === 1006, `connection ${index} (${ending}) got ${code}`);
    }
  }
  await eventually(() => gw.gateway.registry.tunnelCount === 0, 'every tunnel to end', 15_000);
  const ended = await gw.metric('wsgate_closes_total');
  assert.equal(ended, CONNECTIONS, 'one close counted per tunnel');
});
