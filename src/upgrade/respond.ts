/**
 * Writes what a client gets on a socket whose upgrade did not happen: a minimal HTTP/1.1 response
 * with `Connection: close`, after which the socket is closed. Bodies say only the status text;
 * details go to the log. A backend's own 4xx answer is relayed with its headers and body (capped
 * in size and in time).
 */
import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import { headersForStatus } from '../errors/codes.ts';
import { connectionTokens, isHopByHop } from '../protocol/header-rules.ts';
import { BodyDecoder } from '../upstream/body-decoder.ts';
import type { ResponseHead } from '../upstream/response-head.ts';

/** Largest backend rejection body relayed to the client; the rest is dropped. */
const MAX_RELAYED_BODY = 64 * 1024;
/** Most bytes read from the backend for one rejection: the body plus chunk lines and trailers. */
const MAX_READ_FOR_RELAY = MAX_RELAYED_BODY + 16 * 1024;

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
 * Ends a client connection whose relayed body was cut short. The relay frames the body by the
 * close, so a clean close would present a partial body as whole: a TCP reset says it is not (on
 * TLS, a close without close_notify does).
 */
function cutShort(socket: Socket): void {
  if (socket instanceof TLSSocket || socket.destroyed) socket.destroy();
  else socket.resetAndDestroy();
}

/** A backend's answer that was not a 101: its head, its socket and the body bytes read with the head. */
export interface BackendAnswer {
  readonly response: ResponseHead;
  readonly socket: Socket;
  readonly body: Buffer;
}

/**
 * Relays a backend's non-101 answer: status, end-to-end headers and up to 64 KiB of its body
 * (decoded from its framing), framed by closing the connection. Resolves when the client socket
 * is done with. A backend whose body stalls cannot pin the handshake: at `deadlineMs` both sides
 * are destroyed.
 */
export function relayResponse(client: Socket, answer: BackendAnswer, deadlineMs: number): Promise<void> {
  const { response, socket: backend } = answer;
  return new Promise((resolve) => {
    let deadline: NodeJS.Timeout | undefined;
    let finished = false;
    let ending = false;
    /** Ends both sides; `complete` when the client got the whole (or the capped) body. */
    const done = (complete: boolean): void => {
      if (finished) return;
      finished = true;
      clearTimeout(deadline);
      backend.off('data', onData);
      backend.destroy();
      if (complete) client.destroy();
      else cutShort(client);
      resolve();
    };
    const finish = (): void => {
      if (finished || ending) return;
      ending = true; // the backend's close from here on is expected
      backend.destroy();
      client.end(() => done(true));
    };
    const decoder = new BodyDecoder(response.framing);
    let relayed = 0;
    let read = 0;
    const onData = (chunk: Buffer): void => {
      read += chunk.length;
      let parts: Buffer[];
      try {
        parts = decoder.push(chunk);
      } catch {
        done(false); // a malformed body
        return;
      }
      for (const part of parts) {
        const room = MAX_RELAYED_BODY - relayed;
        if (room > 0) client.write(part.subarray(0, room));
        relayed += part.length;
      }
      if (decoder.done || relayed >= MAX_RELAYED_BODY) finish();
      else if (read > MAX_READ_FOR_RELAY) done(false); // chunk lines or trailers without end
    };
    if (client.destroyed || !client.writable) {
      done(true);
      return;
    }
    deadline = setTimeout(() => done(false), deadlineMs);
    const listed = connectionTokens(response.rawHeaders);
    let head = statusLine(response.status);
    for (let i = 0; i < response.rawHeaders.length; i += 2) {
      const name = response.rawHeaders[i] ?? '';
      const lower = name.toLowerCase();
      if (isHopByHop(lower, listed) || lower === 'content-length') continue;
      head += `${name}: ${response.rawHeaders[i + 1] ?? ''}\r\n`;
    }
    client.write(`${head}Connection: close\r\n\r\n`, 'latin1'); // the backend's header bytes, as read
    client.once('close', () => done(true));
    backend.on('data', onData);
    backend.once('end', () => (decoder.end() ? finish() : done(false)));
    backend.once('close', () => ending || done(decoder.end()));
    onData(answer.body);
    if (!finished) backend.resume();
  });
}
