/**
 * The request id that ties together the gateway's log lines for a request or a WebSocket and the
 * backend's own (sent to it as `X-Request-Id`). A trusted proxy's id is kept, so that one id
 * follows the request from the edge to the backend; from anyone else the header is replaced,
 * since a client could otherwise choose ids that collide with other requests in the logs. A new
 * id is a random (version 4) UUID, made from a pool of random bytes and decoded as one string:
 * `crypto.randomUUID` builds each as twenty joined pieces, ten times the memory.
 */
import { randomFillSync } from 'node:crypto';
import { REQUEST_ID_HEADER } from '../protocol/header-rules.ts';

/** What an id may look like to be kept: visible ASCII, of a sensible length. */
const KEEPABLE = /^[\x21-\x7e]{1,200}$/;

/** UUIDs per refill of the random pool. */
const POOL_IDS = 256;
const UUID_BYTES = 16;
const UUID_LENGTH = 36;
const HEX_DIGITS = Uint8Array.from(Buffer.from('0123456789abcdef', 'latin1'));
const DASH = 0x2d;

/** Random UUIDs, drawn from a pool of random bytes refilled every POOL_IDS ids. */
export class RequestIds {
  readonly #random = Buffer.allocUnsafe(UUID_BYTES * POOL_IDS);
  #offset = UUID_BYTES * POOL_IDS;
  readonly #text = Buffer.allocUnsafe(UUID_LENGTH);

  /** A new random UUID (RFC 9562 §5.4), lower-case. */
  next(): string {
    const random = this.#random;
    if (this.#offset === random.length) {
      randomFillSync(random);
      this.#offset = 0;
    }
    const at = this.#offset;
    this.#offset += UUID_BYTES;
    const text = this.#text;
    let written = 0;
    for (let i = 0; i < UUID_BYTES; i++) {
      if (i === 4 || i === 6 || i === 8 || i === 10) text[written++] = DASH;
      let byte = random[at + i] ?? 0;
      if (i === 6)
        byte = (byte & 0x0f) | 0x40; // version 4
      else if (i === 8) byte = (byte & 0x3f) | 0x80; // variant 10
      text[written++] = HEX_DIGITS[byte >> 4] ?? 0;
      text[written++] = HEX_DIGITS[byte & 0x0f] ?? 0;
    }
    return text.toString('latin1', 0, UUID_LENGTH);
  }
}

/** The id for a request whose headers are `headers`, from a trusted proxy or not. */
export function requestIdFor(
  headers: Readonly<Record<string, string | string[] | undefined>>,
  fromTrustedProxy: boolean,
  ids: RequestIds,
): string {
  const sent = headers[REQUEST_ID_HEADER];
  if (fromTrustedProxy && typeof sent === 'string' && KEEPABLE.test(sent)) return sent;
  return ids.next();
}
