/**
 * The few pieces of RFC 6455 the benchmark's echo backend and load client share: the
 * Sec-WebSocket-Accept computation, frame headers, masked client frames and in-place
 * (un)masking. Deliberately minimal: no extensions, no UTF-8 checks.
 */
import { createHash } from 'node:crypto';
import { endianness } from 'node:os';

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

export const OPCODE_CONTINUATION = 0x0;
export const OPCODE_TEXT = 0x1;
export const OPCODE_BINARY = 0x2;
export const OPCODE_CLOSE = 0x8;
export const OPCODE_PING = 0x9;
export const OPCODE_PONG = 0xa;

/** Sec-WebSocket-Accept for a Sec-WebSocket-Key. */
export function acceptKey(key: string): string {
  return createHash('sha1')
    .update(key + GUID)
    .digest('base64');
}

/** Length of the frame header for a payload length, without the masking key. */
function headerLength(payloadLength: number): number {
  if (payloadLength < 126) return 2;
  if (payloadLength < 0x10000) return 4;
  return 10;
}

/** Writes a frame header (first byte `b0`) at offset 0 of `target`; returns its length. */
function writeHeader(target: Buffer, b0: number, payloadLength: number, masked: boolean): number {
  const maskBit = masked ? 0x80 : 0;
  target[0] = b0;
  if (payloadLength < 126) {
    target[1] = maskBit | payloadLength;
    return 2;
  }
  if (payloadLength < 0x10000) {
    target[1] = maskBit | 126;
    target.writeUInt16BE(payloadLength, 2);
    return 4;
  }
  target[1] = maskBit | 127;
  target.writeBigUInt64BE(BigInt(payloadLength), 2);
  return 10;
}

/** An unmasked (server-to-client) frame header; `b0` carries FIN and the opcode. */
export function serverHeader(b0: number, payloadLength: number): Buffer {
  const header = Buffer.allocUnsafe(headerLength(payloadLength));
  writeHeader(header, b0, payloadLength, false);
  return header;
}

/** A complete unmasked (server-to-client) frame. */
export function serverFrame(b0: number, payload: Buffer): Buffer {
  const frame = Buffer.allocUnsafe(headerLength(payload.length) + payload.length);
  const offset = writeHeader(frame, b0, payload.length, false);
  payload.copy(frame, offset);
  return frame;
}

/** A complete masked (client-to-server) frame with FIN set. */
export function clientFrame(opcode: number, payload: Buffer, mask: Buffer): Buffer {
  const frame = Buffer.allocUnsafe(headerLength(payload.length) + 4 + payload.length);
  const offset = writeHeader(frame, 0x80 | opcode, payload.length, true);
  mask.copy(frame, offset, 0, 4);
  payload.copy(frame, offset + 4);
  xorMask(frame.subarray(offset + 4), mask, 0);
  return frame;
}

const LITTLE_ENDIAN = endianness() === 'LE';

/**
 * XORs `data` in place with the 4-byte `mask`, where `data[0]` is byte number `position` of the
 * frame payload (so a payload split over several reads is unmasked piece by piece). Uses 32-bit
 * words for the aligned middle of larger pieces.
 */
export function xorMask(data: Buffer, mask: Buffer, position: number): void {
  const length = data.length;
  let i = 0;
  if (LITTLE_ENDIAN && length >= 64) {
    while (((data.byteOffset + i) & 3) !== 0) {
      data[i] = data[i]! ^ mask[(position + i) & 3]!;
      i++;
    }
    const words = (length - i) >>> 2;
    const p = position + i;
    const word =
      (mask[p & 3]! | (mask[(p + 1) & 3]! << 8) | (mask[(p + 2) & 3]! << 16) | (mask[(p + 3) & 3]! << 24)) >>>
      0;
    const view = new Uint32Array(data.buffer, data.byteOffset + i, words);
    for (let w = 0; w < words; w++) view[w] = view[w]! ^ word;
    i += words * 4;
  }
  for (; i < length; i++) data[i] = data[i]! ^ mask[(position + i) & 3]!;
}
