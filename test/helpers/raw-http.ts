/**
 * HTTP/1.1 at the byte level, for tests that must send what no well-behaved client would (a
 * Connection header naming Content-Length, odd versions, underscore headers) and see every
 * response that comes back on the connection: `exchange` writes raw bytes on a plain or TLS
 * socket and parses the responses (Content-Length, chunked or close-delimited bodies) until the
 * expected number arrived or the gateway closed the connection.
 */
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { within } from './eventually.ts';

export interface ParsedResponse {
  readonly status: number;
  /** Lower-cased names; repeated headers joined with ", ". */
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
}

export interface Exchange {
  readonly responses: readonly ParsedResponse[];
  /** Whether the gateway closed the connection (rather than the exchange stopping at `count`). */
  readonly closedByPeer: boolean;
}

export interface ExchangeOptions {
  /** Stop after this many complete responses (default: read until the connection closes). */
  readonly count?: number;
  /** Connect with TLS, trusting this CA. */
  readonly tlsCa?: Buffer;
  readonly timeoutMs?: number;
  /** The request was a HEAD: its responses have no body whatever their Content-Length says. */
  readonly head?: boolean;
}

/** A response head (without its blank line): the status line and lower-cased headers, repeats joined. */
export function parseHead(head: Buffer): { statusLine: string; headers: Record<string, string> } {
  const [statusLine = '', ...lines] = head.toString('latin1').split('\r\n');
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    headers[name] = headers[name] ? `${headers[name]}, ${value}` : value;
  }
  return { statusLine, headers };
}

/** Parses the complete responses at the start of `data`; returns them and the bytes consumed. */
function parseResponses(
  data: Buffer,
  closed: boolean,
  head = false,
): { responses: ParsedResponse[]; used: number } {
  const responses: ParsedResponse[] = [];
  let at = 0;
  for (;;) {
    const headEnd = data.indexOf('\r\n\r\n', at);
    if (headEnd === -1) break;
    const { statusLine, headers } = parseHead(data.subarray(at, headEnd));
    const status = Number(statusLine.split(' ')[1]);
    let bodyStart = headEnd + 4;
    let body: Buffer;
    if (status >= 100 && status < 200 && status !== 101) {
      at = bodyStart; // an interim response (100 Continue): no body, the final one follows
      continue;
    }
    if (head || status === 101 || status === 204 || status === 304) {
      body = Buffer.alloc(0);
    } else if (headers['transfer-encoding']?.toLowerCase().includes('chunked')) {
      const parts: Buffer[] = [];
      let cursor = bodyStart;
      let complete = false;
      for (;;) {
        const lineEnd = data.indexOf('\r\n', cursor);
        if (lineEnd === -1) break;
        const size = Number.parseInt(data.subarray(cursor, lineEnd).toString('latin1'), 16);
        if (size === 0) {
          const trailerEnd = data.indexOf('\r\n', lineEnd + 2);
          if (trailerEnd === -1) break;
          cursor = trailerEnd + 2;
          complete = true;
          break;
        }
        if (data.length < lineEnd + 2 + size + 2) break;
        parts.push(data.subarray(lineEnd + 2, lineEnd + 2 + size));
        cursor = lineEnd + 2 + size + 2;
      }
      if (!complete) break;
      body = Buffer.concat(parts);
      bodyStart = cursor;
    } else if (headers['content-length'] !== undefined) {
      const length = Number(headers['content-length']);
      if (data.length < bodyStart + length) break;
      body = data.subarray(bodyStart, bodyStart + length);
      bodyStart += length;
    } else {
      if (!closed) break;
      body = data.subarray(bodyStart);
      bodyStart = data.length;
    }
    responses.push({ status, headers, body: body.toString('latin1') });
    at = bodyStart;
  }
  return { responses, used: at };
}

/** Opens a socket to 127.0.0.1:`port`, plain or TLS. */
export function openRaw(port: number, tlsCa?: Buffer): Socket {
  const socket = tlsCa
    ? tlsConnect({ host: '127.0.0.1', port, ca: tlsCa, servername: 'localhost' })
    : netConnect(port, '127.0.0.1');
  socket.on('error', () => {});
  return socket;
}

/** Writes `bytes` on a new connection and collects the responses (see the module comment). */
export function exchange(
  port: number,
  bytes: string | Buffer,
  options: ExchangeOptions = {},
): Promise<Exchange> {
  const socket = openRaw(port, options.tlsCa);
  socket.write(bytes);
  return within(
    new Promise((resolve) => {
      let received = Buffer.alloc(0);
      let done = false;
      const finish = (closedByPeer: boolean): void => {
        if (done) return;
        done = true;
        const { responses } = parseResponses(received, closedByPeer, options.head);
        socket.destroy();
        resolve({ responses, closedByPeer });
      };
      socket.on('data', (chunk: Buffer) => {
        received = Buffer.concat([received, chunk]);
        const { responses } = parseResponses(received, false, options.head);
        if (options.count !== undefined && responses.length >= options.count) finish(false);
      });
      socket.once('end', () => finish(true));
      socket.once('close', () => finish(true));
    }),
    `responses on port ${port}`,
    options.timeoutMs ?? 10_000,
  );
}
