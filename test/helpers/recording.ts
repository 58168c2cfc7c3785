/**
 * A backend that records everything a tunnel delivers to it (messages, pings, pongs, how it was
 * closed), optionally echoing messages, and a gateway in front of it with a `websocket` policy: the
 * pieces of the tests of message limits, compression and liveness.
 */
import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import type { ServerOptions, WebSocket } from 'ws';
import { startEchoBackend } from './backends.ts';
import type { Closed } from './clients.ts';
import { eventually } from './eventually.ts';
import type { FakeClock } from './fake-clock.ts';
import { type LogRecord, startGateway, type TestGateway } from './gateway.ts';

export interface RecordingBackend {
  readonly url: string;
  /** Every complete message received, in order. */
  readonly received: Buffer[];
  readonly pings: Buffer[];
  readonly pongs: Buffer[];
  /** The close the backend got, once it did. */
  readonly closed: Promise<Closed>;
  /** The backend's socket of the first connection. */
  readonly socket: () => WebSocket;
}

export async function recordingBackend(
  t: TestContext,
  options: { readonly echo?: boolean; readonly ws?: ServerOptions } = {},
): Promise<RecordingBackend> {
  const received: Buffer[] = [];
  const pings: Buffer[] = [];
  const pongs: Buffer[] = [];
  let resolveClosed: (closed: Closed) => void = () => {};
  const closed = new Promise<Closed>((resolve) => {
    resolveClosed = resolve;
  });
  const backend = await startEchoBackend(t, {
    ws: { maxPayload: 1 << 30, ...options.ws },
    onConnection: (socket) => {
      socket.on('message', (data, isBinary) => {
        received.push(data as Buffer);
        if (options.echo) socket.send(data, { binary: isBinary });
      });
      socket.on('ping', (data) => pings.push(data));
      socket.on('pong', (data) => pongs.push(data));
      socket.on('close', (code, reason) => resolveClosed({ code, reason: reason.toString() }));
    },
  });
  return {
    url: backend.url,
    received,
    pings,
    pongs,
    closed,
    socket: () => {
      const socket = backend.sockets[0];
      assert.ok(socket, 'the backend has a connection');
      return socket;
    },
  };
}

/**
 * A gateway with one route to `backendUrl` and the `websocket` block given (gateway keepalive off
 * unless it says otherwise), on `clock` when given.
 */
export function policyGateway(
  t: TestContext,
  backendUrl: string,
  websocket: Record<string, unknown>,
  clock?: FakeClock,
): Promise<TestGateway> {
  const { keepalive, ...rest } = websocket;
  return startGateway(
    t,
    {
      routes: { app: { pool: 'app' } },
      pools: { app: { backends: [backendUrl] } },
      websocket: { keepalive: { client: 'off', ...(keepalive as object | undefined) }, ...rest },
    },
    clock ? { clock } : {},
  );
}

/** Waits for the tunnel's access line (`websocket closed`) and returns it. */
export async function tunnelEnded(gw: TestGateway): Promise<LogRecord> {
  const line = () => gw.logs.find((record) => record.msg === 'websocket closed');
  await eventually(() => line() !== undefined, 'the tunnel to end', 10_000);
  return line() as LogRecord;
}
