/**
 * A bug inside a tunnel (here: a counter that throws) must cost that tunnel only: both sides get
 * close 1011 from the gateway, the sockets are closed, teardown runs once and the process lives.
 * The tunnel is built directly on two real loopback socket pairs so the fault can be injected.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { type AddressInfo, connect, createServer, type Socket } from 'node:net';
import { test } from 'node:test';
import { pino } from 'pino';
import type { TrafficCell } from '../../src/observability/metrics.ts';
import { FrameScanner } from '../../src/tunnel/frame-scanner.ts';
import { Sweeper, SYSTEM_CLOCK } from '../../src/tunnel/sweeper.ts';
import { Tunnel, type TunnelSummary } from '../../src/tunnel/tunnel.ts';
import { within } from '../helpers/eventually.ts';
import { encodeFrame } from '../helpers/frames.ts';
import { IGNORE_OBSERVER, tunnelPolicy } from '../helpers/policy.ts';

/** A connected pair of loopback sockets: [the test's end, the gateway's end]. */
async function socketPair(): Promise<[Socket, Socket]> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const accepted = once(server, 'connection') as Promise<[Socket]>;
  const outer = connect((server.address() as AddressInfo).port, '127.0.0.1');
  const [inner] = await accepted;
  server.close();
  outer.on('error', () => {});
  inner.on('error', () => {});
  return [outer, inner];
}

/** Resolves with the code of the first close frame read from `socket` (frames of `direction`). */
function closeCodeReadBy(
  socket: Socket,
  direction: 'client_to_backend' | 'backend_to_client',
): Promise<number | undefined> {
  return within(
    new Promise((resolve) => {
      const scanner = new FrameScanner(
        { direction, allowedRsv: 0 },
        { onMessage: () => {}, onControl: () => {}, onClose: (code) => resolve(code) },
      );
      socket.on('data', (chunk: Buffer) => scanner.push(chunk));
    }),
    `a close frame (${direction})`,
  );
}

test('an exception inside the tunnel closes both sides with 1011 and tears down once', async () => {
  const [client, clientSide] = await socketPair();
  const [backend, backendSide] = await socketPair();
  const failing: TrafficCell = {
    bytes: 0,
    get messages(): number {
      return 0;
    },
    set messages(_value: number) {
      throw new Error('injected counter failure');
    },
  };
  const summaries: TunnelSummary[] = [];
  const tunnel = new Tunnel(
    {
      id: 't1',
      client: clientSide,
      backend: backendSide,
      allowedRsv: 0,
      deflate: undefined,
      policy: tunnelPolicy({ closeTimeoutMs: 2_000 }),
      settings: {
        sweeper: new Sweeper(1_000),
        clock: SYSTEM_CLOCK,
        backpressure: { client_to_backend: 0, backend_to_client: 0 },
      },
      observer: IGNORE_OBSERVER,
      counters: { client_to_backend: failing, backend_to_client: { messages: 0, bytes: 0 } },
      log: pino({ level: 'silent' }),
      onEnd: (summary) => summaries.push(summary),
    },
    { client: Buffer.alloc(0), backend: Buffer.alloc(0) },
  );
  tunnel.start();
  const clientGot = closeCodeReadBy(client, 'backend_to_client');
  const backendGot = closeCodeReadBy(backend, 'client_to_backend');
  client.write(encodeFrame({ opcode: 1, payload: Buffer.from('boom'), masked: true }));
  assert.equal(await clientGot, 1011);
  assert.equal(await backendGot, 1011);
  client.end();
  backend.end();
  await within(
    new Promise<void>((resolve) => {
      const check = (): void => {
        if (summaries.length > 0) resolve();
        else setTimeout(check, 10);
      };
      check();
    }),
    'teardown',
  );
  assert.equal(summaries.length, 1);
  assert.equal(summaries[0]?.errorCode, 'INTERNAL_ERROR');
  assert.equal(summaries[0]?.initiator, 'gateway');
  client.destroy();
  backend.destroy();
});
