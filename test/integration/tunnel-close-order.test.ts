/**
 * Ordering rules around close frames (RFC 6455 §5.5.1: nothing may follow a close frame):
 * - when the gateway's own close waits for a frame boundary and the peer's close frame is what
 *   completes it, the client receives the peer's close only, not a second one from the gateway;
 * - whole frames that precede a close frame in the same chunk reach the other side even when
 *   stray bytes follow the close frame.
 */
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { test } from 'node:test';
import { FrameScanner } from '../../src/tunnel/frame-scanner.ts';
import { startHttpBackend, switchingProtocolsHead } from '../helpers/backends.ts';
import { handshakeHeaders } from '../helpers/clients.ts';
import { eventually, within } from '../helpers/eventually.ts';
import { encodeFrame } from '../helpers/frames.ts';
import { startGateway } from '../helpers/gateway.ts';

interface SeenFrame {
  readonly kind: 'message' | 'close' | 'violation';
  readonly size?: number;
  readonly code?: number | undefined;
  readonly violation?: string;
}

/** Records the frames arriving on `socket` (after the HTTP head when `skipHead`). */
function recordFrames(
  socket: Socket,
  direction: 'client_to_backend' | 'backend_to_client',
  skipHead: boolean,
): SeenFrame[] {
  const seen: SeenFrame[] = [];
  const scanner = new FrameScanner(
    { direction, allowedRsv: 0 },
    {
      onMessage: (_opcode, bytes) => seen.push({ kind: 'message', size: bytes }),
      onControl: () => {},
      onClose: (code) => seen.push({ kind: 'close', code }),
    },
  );
  let violated = false;
  const push = (chunk: Buffer): void => {
    const result = scanner.push(chunk);
    if (!result.ok && !violated) {
      violated = true; // e.g. DATA_AFTER_CLOSE: a second close frame after the first
      seen.push({ kind: 'violation', violation: result.violation });
    }
  };
  let pending = skipHead ? Buffer.alloc(0) : undefined;
  socket.on('data', (chunk: Buffer) => {
    if (pending === undefined) {
      push(chunk);
      return;
    }
    pending = Buffer.concat([pending, chunk]);
    const end = pending.indexOf('\r\n\r\n');
    if (end === -1) return;
    const rest = pending.subarray(end + 4);
    pending = undefined;
    if (rest.length > 0) push(rest);
  });
  return seen;
}

function rawClient(port: number): Socket {
  const socket = connect(port, '127.0.0.1');
  socket.on('error', () => {});
  const lines = Object.entries(handshakeHeaders()).map(([name, value]) => `${name}: ${value}`);
  socket.write(`GET / HTTP/1.1\r\n${lines.join('\r\n')}\r\n\r\n`);
  return socket;
}

test("a pending gateway close is dropped when the backend's own close completes the frame", async (t) => {
  const big = encodeFrame({ opcode: 2, payload: Buffer.alloc(1000, 1) });
  let backendFrames: SeenFrame[] = [];
  const backend = await startHttpBackend(
    t,
    (_req, res) => res.end(),
    (req, socket) => {
      socket.write(switchingProtocolsHead(req));
      socket.write(big.subarray(0, 14)); // a frame begun but not finished: the client stream is mid-frame
      backendFrames = recordFrames(socket, 'client_to_backend', false);
      const finish = (): void => {
        if (!backendFrames.some((frame) => frame.kind === 'close')) return;
        socket.off('data', finish);
        // The backend finishes its frame and answers the gateway's close in one write.
        socket.end(
          Buffer.concat([big.subarray(14), encodeFrame({ opcode: 8, payload: Buffer.from([0x03, 0xe9]) })]),
        );
      };
      socket.on('data', finish);
    },
  );
  const gw = await startGateway(t, {
    routes: { echo: { pool: 'p' } },
    pools: { p: { backends: [backend.url] } },
    tunnel: { closeTimeout: '2s' },
  });
  const client = rawClient(gw.port());
  t.after(() => client.destroy());
  const clientFrames = recordFrames(client, 'backend_to_client', true);
  await eventually(() => gw.gateway.registry.tunnelCount === 1, 'the tunnel is open');
  await eventually(
    async () => (await gw.metric('wsgate_bytes_total', { direction: 'backend_to_client' })) >= 14,
    'the frame start relayed',
  );
  const ended = within(new Promise((resolve) => client.once('end', resolve)), 'the client connection to end');
  await gw.gateway.shutdown();
  await ended;
  assert.deepEqual(clientFrames, [
    { kind: 'message', size: 1000 },
    { kind: 'close', code: 1001 },
  ]);
  assert.deepEqual(backendFrames, [{ kind: 'close', code: 1001 }]);
});

test('whole frames before a close frame are relayed even when stray bytes follow it', async (t) => {
  let backendFrames: SeenFrame[] = [];
  const backend = await startHttpBackend(
    t,
    (_req, res) => res.end(),
    (req, socket) => {
      socket.write(switchingProtocolsHead(req));
      backendFrames = recordFrames(socket, 'client_to_backend', false);
      socket.on('end', () => socket.end());
    },
  );
  const gw = await startGateway(t, {
    routes: { echo: { pool: 'p' } },
    pools: { p: { backends: [backend.url] } },
  });
  const client = rawClient(gw.port());
  t.after(() => client.destroy());
  await eventually(() => gw.gateway.registry.tunnelCount === 1, 'the tunnel is open');
  client.write(
    Buffer.concat([
      encodeFrame({ opcode: 1, payload: 'last words', masked: true }),
      encodeFrame({ opcode: 8, payload: Buffer.from([0x03, 0xe8]), masked: true }),
      Buffer.from([0x81]), // a stray byte after the close frame
    ]),
  );
  await eventually(
    () => backendFrames.some((frame) => frame.kind === 'close'),
    'the close frame at the backend',
  );
  assert.deepEqual(backendFrames, [
    { kind: 'message', size: 10 },
    { kind: 'close', code: 1000 },
  ]);
  client.end();
});
