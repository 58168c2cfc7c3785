/**
 * Client-side helpers: a `ws` client that resolves once open, the close a client receives, and a
 * raw upgrade request on a bare TCP socket that returns the exact status and headers answered.
 */
import { request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { type ClientOptions, WebSocket } from 'ws';
import { within } from './eventually.ts';
import { parseHead } from './raw-http.ts';

/** Opens a `ws` client and resolves when it is open; rejects on an unexpected response or error. */
export function openClient(
  url: string,
  protocols?: string | string[],
  options?: ClientOptions,
): Promise<WebSocket> {
  const ws = new WebSocket(url, protocols, options);
  return within(
    new Promise((resolve, reject) => {
      ws.once('open', () => resolve(ws));
      ws.once('error', reject);
      ws.once('unexpected-response', (_req, res) =>
        reject(new Error(`unexpected response ${res.statusCode}`)),
      );
    }),
    `open ${url}`,
  );
}

export interface Closed {
  readonly code: number;
  readonly reason: string;
}

/** Resolves with the close code and reason the client gets. */
export function closeOf(ws: WebSocket, timeoutMs = 5_000): Promise<Closed> {
  return within(
    new Promise((resolve) =>
      ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })),
    ),
    'client close',
    timeoutMs,
  );
}

/** The next message a client receives. */
export function nextMessage(ws: WebSocket): Promise<{ data: Buffer; isBinary: boolean }> {
  return within(
    new Promise((resolve) =>
      ws.once('message', (data, isBinary) =>
        resolve({ data: Buffer.isBuffer(data) ? data : Buffer.from(data as ArrayBuffer), isBinary }),
      ),
    ),
    'a message',
  );
}

export interface RawResponse {
  readonly status: number;
  readonly statusLine: string;
  /** Lower-cased header names; repeated headers joined with ", ". */
  readonly headers: Readonly<Record<string, string>>;
  /** Everything after the head that arrived before the connection closed (or within the wait). */
  readonly rest: Buffer;
  readonly socket: Socket;
}

export const VALID_KEY = 'dGhlIHNhbXBsZSBub25jZQ==';

/** Headers of a valid handshake, to be altered by a test. */
export function handshakeHeaders(host = '127.0.0.1'): Record<string, string> {
  return {
    Host: host,
    Upgrade: 'websocket',
    Connection: 'Upgrade',
    'Sec-WebSocket-Key': VALID_KEY,
    'Sec-WebSocket-Version': '13',
  };
}

/** The header lines of a valid handshake for `host`, each ending in CRLF (no blank line). */
export function handshakeLines(host = '127.0.0.1'): string {
  return Object.entries(handshakeHeaders(host))
    .map(([name, value]) => `${name}: ${value}\r\n`)
    .join('');
}

/**
 * Sends a raw request (`method path HTTP/1.1` with exactly `headers`, plus `extra` bytes in the
 * same write) and resolves with the response head once it is complete.
 */
export function rawRequest(
  port: number,
  options: {
    method?: string;
    path?: string;
    headers: Record<string, string>;
    extra?: Buffer;
    version?: string;
  },
): Promise<RawResponse> {
  const socket = connect(port, '127.0.0.1');
  socket.on('error', () => {});
  const lines = [`${options.method ?? 'GET'} ${options.path ?? '/'} HTTP/${options.version ?? '1.1'}`];
  for (const [name, value] of Object.entries(options.headers)) lines.push(`${name}: ${value}`);
  const head = Buffer.from(`${lines.join('\r\n')}\r\n\r\n`);
  socket.write(options.extra ? Buffer.concat([head, options.extra]) : head);
  return within(
    new Promise((resolve, reject) => {
      let received = Buffer.alloc(0);
      const onData = (chunk: Buffer): void => {
        received = Buffer.concat([received, chunk]);
        const end = received.indexOf('\r\n\r\n');
        if (end === -1) return;
        socket.off('data', onData);
        socket.pause();
        const { statusLine, headers } = parseHead(received.subarray(0, end));
        resolve({
          status: Number(statusLine.split(' ')[1]),
          statusLine,
          headers,
          rest: received.subarray(end + 4),
          socket,
        });
      };
      socket.on('data', onData);
      socket.once('close', () =>
        reject(new Error(`connection closed before a response head (got ${received.length} bytes)`)),
      );
    }),
    `a response on port ${port}`,
  );
}

/**
 * Opens a WebSocket on a raw socket that never answers a close frame and never closes its own
 * half (allowHalfOpen): the peer that keeps a gateway draining. Resolves once the handshake is
 * written; the caller waits for the tunnel and destroys the socket at the end.
 */
export function openStubbornClient(port: number): Socket {
  const socket = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  socket.on('error', () => {});
  socket.resume();
  const lines = Object.entries(handshakeHeaders('x')).map(([name, value]) => `${name}: ${value}`);
  socket.write(`GET / HTTP/1.1\r\n${lines.join('\r\n')}\r\n\r\n`);
  return socket;
}

/** Targets a backend could read differently from the router; each must be refused with 400. */
export const MISREADABLE_TARGETS = [
  '/\\evil:99999/',
  '/\\evil.example/x',
  '/public/../secret',
  '/public/%2e%2E/secret',
  '/public/./x',
  '/public/..#x',
  'http://evil.example/public',
  '*',
];

/** A plain GET to `host`:`port` on a fresh connection; resolves with its status and body. */
export function plainGet(
  port: number,
  path: string,
  headers: Record<string, string> = {},
  host = '127.0.0.1',
): Promise<{ status: number; body: string }> {
  return plainRequest(port, path, { headers, host });
}

/** A request without a body (GET unless `method` says otherwise) on a fresh connection. */
export function plainRequest(
  port: number,
  path: string,
  {
    method = 'GET',
    headers = {},
    host = '127.0.0.1',
  }: { method?: string; headers?: Record<string, string>; host?: string },
): Promise<{ status: number; body: string }> {
  return within(
    new Promise((resolve, reject) => {
      const req = request({ host, port, path, method, headers, agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          body += chunk;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on('error', reject);
      req.end();
    }),
    `${method} ${path} on port ${port}`,
  );
}
