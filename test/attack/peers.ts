/**
 * Hostile peers for the attack tests: a raw TCP WebSocket client that writes whatever bytes it is
 * told (masked frames built with encodeFrame) and parses what the gateway sends back, and a raw
 * backend that answers the upgrade itself and can stream any bytes toward the client. Both parse
 * incoming frames incrementally so a test can see the close code, pings and whole messages.
 */
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { TestContext } from 'node:test';
import { constants, deflateRawSync } from 'node:zlib';
import { startHttpBackend, switchingProtocolsHead } from '../helpers/backends.ts';
import { handshakeHeaders, rawRequest } from '../helpers/clients.ts';
import { within } from '../helpers/eventually.ts';
import { encodeFrame } from '../helpers/frames.ts';
import type { TestGateway } from '../helpers/gateway.ts';

export const KIB = 1024;
export const MIB = 1024 * KIB;

export interface ParsedFrame {
  readonly fin: boolean;
  readonly rsv: number;
  readonly opcode: number;
  readonly payload: Buffer;
}

/** Incremental frame parser (either masking), for what a peer receives. */
export class FrameReader {
  #buffer: Buffer = Buffer.alloc(0);
  readonly frames: ParsedFrame[] = [];
  /** Bytes received in total. */
  bytes = 0;
  /** Payload bytes of the frame currently being received, while it is incomplete. */
  pendingPayload = 0;

  push(chunk: Buffer): void {
    this.bytes += chunk.length;
    this.#buffer = this.#buffer.length === 0 ? chunk : Buffer.concat([this.#buffer, chunk]);
    for (;;) {
      const b = this.#buffer;
      if (b.length < 2) return;
      const b0 = b[0] ?? 0;
      const b1 = b[1] ?? 0;
      const masked = (b1 & 0x80) !== 0;
      let length = b1 & 0x7f;
      let at = 2;
      if (length === 126) {
        if (b.length < 4) return;
        length = b.readUInt16BE(2);
        at = 4;
      } else if (length === 127) {
        if (b.length < 10) return;
        length = Number(b.readBigUInt64BE(2));
        at = 10;
      }
      const keyAt = at;
      if (masked) at += 4;
      if (b.length < at + length) {
        this.pendingPayload = Math.max(0, b.length - at);
        return;
      }
      this.pendingPayload = 0;
      const payload = Buffer.from(b.subarray(at, at + length));
      if (masked)
        for (let i = 0; i < payload.length; i++) payload[i] = (payload[i] ?? 0) ^ (b[keyAt + (i & 3)] ?? 0);
      this.frames.push({ fin: (b0 & 0x80) !== 0, rsv: b0 & 0x70, opcode: b0 & 0x0f, payload });
      this.#buffer = b.subarray(at + length);
    }
  }

  /** The first close frame's code, if one arrived. */
  get closeCode(): number | undefined {
    const close = this.frames.find((frame) => frame.opcode === 8);
    return close && close.payload.length >= 2 ? close.payload.readUInt16BE(0) : undefined;
  }

  get closeReason(): string | undefined {
    const close = this.frames.find((frame) => frame.opcode === 8);
    return close?.payload.subarray(2).toString();
  }

  /** Whole data messages (fragments joined), in order. */
  messages(): Buffer[] {
    const out: Buffer[] = [];
    let parts: Buffer[] | undefined;
    for (const frame of this.frames) {
      if (frame.opcode === 1 || frame.opcode === 2) parts = [frame.payload];
      else if (frame.opcode === 0 && parts) parts.push(frame.payload);
      else continue;
      if (frame.fin && parts) {
        out.push(Buffer.concat(parts));
        parts = undefined;
      }
    }
    return out;
  }

  controls(opcode: 9 | 10): Buffer[] {
    return this.frames.filter((frame) => frame.opcode === opcode).map((frame) => frame.payload);
  }
}

export interface RawClient {
  readonly socket: Socket;
  readonly reader: FrameReader;
  /** The 101 response head. */
  readonly head: string;
  /** Resolves when the socket closes; `hadError` when it was reset or destroyed. */
  readonly closed: Promise<{ hadError: boolean }>;
  /** Writes a masked client frame. */
  send(spec: Parameters<typeof encodeFrame>[0]): boolean;
}

/** Opens a WebSocket on a raw socket; `extensions` becomes Sec-WebSocket-Extensions. */
export async function rawClient(
  t: TestContext,
  gw: TestGateway,
  options: { readonly extensions?: string; readonly path?: string } = {},
): Promise<RawClient> {
  const headers: Record<string, string> = { ...handshakeHeaders() };
  if (options.extensions) headers['Sec-WebSocket-Extensions'] = options.extensions;
  const response = await rawRequest(gw.port(), { path: options.path ?? '/', headers });
  const { socket } = response;
  socket.setNoDelay(true); // each write its own segment: no Nagle coalescing of byte-by-byte writes
  t.after(() => {
    socket.destroy();
  });
  assert.equal(response.status, 101, response.statusLine);
  const head = [
    response.statusLine,
    ...Object.entries(response.headers).map(([name, value]) => `${name}: ${value}`),
  ].join('\r\n');
  const closed = new Promise<{ hadError: boolean }>((resolve) =>
    socket.once('close', (hadError) => resolve({ hadError })),
  );
  const reader = new FrameReader();
  if (response.rest.length > 0) reader.push(response.rest);
  socket.on('data', (more: Buffer) => reader.push(more));
  socket.resume();
  return {
    socket,
    reader,
    head,
    closed,
    send: (spec) => socket.write(encodeFrame({ masked: true, ...spec })),
  };
}

export interface RawBackend {
  readonly url: string;
  /** The backend's raw sockets, one per tunnel, in order. */
  readonly sockets: Socket[];
  readonly readers: FrameReader[];
  /** Resolves with the first tunnel's socket once upgraded. */
  readonly connected: Promise<Socket>;
  /** Whether each socket closed with an error/reset (no close frame exchange). */
  readonly closes: Promise<{ hadError: boolean }>[];
}

/**
 * A backend that answers the upgrade by hand (accepting permessage-deflate when offered, with
 * `deflateAnswer`) and then just records what it gets and writes what the test tells it to.
 */
export async function rawBackend(
  t: TestContext,
  options: { readonly deflateAnswer?: string } = {},
): Promise<RawBackend> {
  const sockets: Socket[] = [];
  const readers: FrameReader[] = [];
  const closes: Promise<{ hadError: boolean }>[] = [];
  let resolveConnected: (socket: Socket) => void = () => {};
  const connected = new Promise<Socket>((resolve) => {
    resolveConnected = resolve;
  });
  const backend = await startHttpBackend(
    t,
    (_req, res) => res.end('raw backend'),
    (req: IncomingMessage, socket: Socket, head: Buffer) => {
      const offered = String(req.headers['sec-websocket-extensions'] ?? '');
      let response = switchingProtocolsHead(req);
      if (offered.includes('permessage-deflate')) {
        const answer = options.deflateAnswer ?? 'permessage-deflate';
        response = response.replace(/\r\n\r\n$/, `\r\nSec-WebSocket-Extensions: ${answer}\r\n\r\n`);
      }
      socket.setNoDelay(true);
      socket.write(response);
      const reader = new FrameReader();
      if (head.length > 0) reader.push(head);
      socket.on('data', (chunk: Buffer) => reader.push(chunk));
      closes.push(new Promise((resolve) => socket.once('close', (hadError) => resolve({ hadError }))));
      sockets.push(socket);
      readers.push(reader);
      resolveConnected(socket);
    },
  );
  t.after(() => {
    for (const socket of sockets) socket.destroy();
  });
  return { url: backend.url, sockets, readers, connected, closes };
}

/** A server frame (unmasked). */
export function serverFrame(spec: Parameters<typeof encodeFrame>[0]): Buffer {
  return encodeFrame({ masked: false, ...spec });
}

/** permessage-deflate payload of `data` as one message (the 00 00 ff ff tail stripped, RFC 7692 §7.2.1). */
export function deflateMessage(data: Buffer): Buffer {
  const out = deflateRawSync(data, { finishFlush: constants.Z_SYNC_FLUSH });
  assert.ok(out.subarray(-4).equals(Buffer.from([0, 0, 0xff, 0xff])));
  return out.subarray(0, -4);
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Resolves when the socket's close event came (or already did). */
export function socketClosed(socket: Socket, timeoutMs = 5_000): Promise<void> {
  if (socket.destroyed && socket.closed) return Promise.resolve();
  return within(new Promise((resolve) => socket.once('close', () => resolve())), 'socket close', timeoutMs);
}
