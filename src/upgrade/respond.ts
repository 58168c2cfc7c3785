/**
 * Writes what a client gets on a socket whose upgrade did not happen: a minimal HTTP/1.1 response
 * with `Connection: close`, after which the socket is closed. Bodies say only the status text;
 * details go to the log. A backend's own 4xx answer is relayed with its headers and body (capped
 * in size and in time).
 */
import { type IncomingMessage, STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import { headersForStatus } from '../errors/codes.ts';
import { connectionTokens, isHopByHop } from '../protocol/header-rules.ts';

/** Largest backend rejection body relayed to the client; the rest is dropped. */
const MAX_RELAYED_BODY = 64 * 1024;

function statusLine(status: number): string {
  return `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Unknown'}\r\n`;
}

/** Writes a complete response and closes the socket once it is flushed. */
export function writeResponse(
  socket: Socket,
  status: number,
  headers: readonly (readonly [string, string])[] = [],
): void {
  if (socket.destroyed || !socket.writable) {
    socket.destroy();
    return;
  }
  const body = `${STATUS_CODES[status] ?? 'Error'}\n`;
  let head = statusLine(status);
  head += 'Connection: close\r\nContent-Type: text/plain; charset=utf-8\r\n';
  head += `Content-Length: ${Buffer.byteLength(body)}\r\n`;
  for (const [name, value] of [...headers, ...Object.entries(headersForStatus(status))]) {
    head += `${name}: ${value}\r\n`;
  }
  socket.end(`${head}\r\n${body}`, () => socket.destroy());
}

/**
 * Relays a backend's non-101 answer: status, end-to-end headers and up to 64 KiB of body, framed
 * by closing the connection. Resolves when the client socket is done with. A backend whose body
 * stalls cannot pin the handshake: at `deadlineMs` both sides are destroyed.
 */
export function relayResponse(socket: Socket, response: IncomingMessage, deadlineMs: number): Promise<void> {
  return new Promise((resolve) => {
    let deadline: NodeJS.Timeout | undefined;
    const done = (): void => {
      clearTimeout(deadline);
      response.destroy();
      socket.destroy();
      resolve();
    };
    if (socket.destroyed || !socket.writable) {
      done();
      return;
    }
    deadline = setTimeout(done, deadlineMs);
    const listed = connectionTokens(response.rawHeaders);
    let head = statusLine(response.statusCode ?? 502);
    for (let i = 0; i < response.rawHeaders.length; i += 2) {
      const name = response.rawHeaders[i] ?? '';
      if (isHopByHop(name, listed) || name.toLowerCase() === 'content-length') continue;
      head += `${name}: ${response.rawHeaders[i + 1] ?? ''}\r\n`;
    }
    socket.write(`${head}Connection: close\r\n\r\n`, 'latin1'); // the backend's header bytes, as read
    let relayed = 0;
    response.on('data', (chunk: Buffer) => {
      const room = MAX_RELAYED_BODY - relayed;
      if (room > 0) socket.write(chunk.subarray(0, room));
      relayed += chunk.length;
      if (relayed >= MAX_RELAYED_BODY) socket.end(done);
    });
    response.once('end', () => socket.end(done));
    response.once('error', done);
    response.once('aborted', done);
    socket.once('close', done);
  });
}
