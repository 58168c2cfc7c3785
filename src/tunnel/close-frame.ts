/**
 * Close frames the gateway writes itself (idle timeout, shutdown, protocol errors, limits), and the
 * rule for which close codes may appear on the wire. Both live here so that the encoder and the
 * frame scanner that checks peers agree on the same set of codes.
 */

import { randomFillSync } from 'node:crypto';

/** Opcode 0x8 with FIN set (RFC 6455 §5.2, §5.5.1). */
const CLOSE_FIN_OPCODE = 0x88;
/** Set in the second header byte of a masked frame (RFC 6455 §5.2). */
const MASK_BIT = 0x80;
/** A control frame carries at most 125 payload bytes (RFC 6455 §5.5), 2 of which are the code. */
const MAX_REASON_BYTES = 123;

/**
 * True for the close codes a peer may send: 1000-1003, 1007-1014 (RFC 6455 §7.4.1 and the IANA
 * registry) and 3000-4999 (registered and private use, §7.4.2). 1004 is reserved, and 1005, 1006
 * and 1015 must never be sent in a close frame.
 */
export function isValidCloseCode(code: number): boolean {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);
}

/**
 * Encodes a complete close frame (FIN, opcode 0x8) carrying a 2-byte `code` and `reason` as UTF-8,
 * truncated to fit the 123 bytes left in a control frame without splitting a character (lone
 * surrogates become U+FFFD). With `masked` (frames sent to a backend, RFC 6455 §5.3) the payload is
 * masked with a fresh random 4-byte key; frames sent to a client are never masked (§5.1).
 *
 * @throws {RangeError} when `code` is not one that may be sent on the wire (see {@link isValidCloseCode}).
 */
export function encodeCloseFrame(code: number, reason: string, masked: boolean): Buffer {
  if (!Number.isInteger(code) || !isValidCloseCode(code)) {
    throw new RangeError(`close code ${code} may not be sent on the wire`);
  }
  const headerBytes = masked ? 6 : 2;
  const frame = Buffer.allocUnsafe(headerBytes + 2 + MAX_REASON_BYTES);
  frame.writeUInt16BE(code, headerBytes);
  // Buffer#write never writes a partially encoded character, so the cut lands between characters.
  const reasonBytes =
    reason.length === 0 ? 0 : frame.write(reason, headerBytes + 2, MAX_REASON_BYTES, 'utf8');
  const payloadBytes = 2 + reasonBytes;
  frame[0] = CLOSE_FIN_OPCODE;
  frame[1] = (masked ? MASK_BIT : 0) | payloadBytes;
  if (masked) {
    randomFillSync(frame, 2, 4);
    for (let i = 0; i < payloadBytes; i++) {
      frame[headerBytes + i] = (frame[headerBytes + i] ?? 0) ^ (frame[2 + (i & 3)] ?? 0);
    }
  }
  return frame.subarray(0, headerBytes + payloadBytes);
}
