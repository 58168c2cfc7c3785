/** Close frame encoder and close-code rule: exact bytes, masking, truncation of the reason. */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { encodeCloseFrame, isValidCloseCode } from '../../../src/tunnel/close-frame.ts';

/** Undoes the mask of a masked close frame with a 7-bit length and returns its payload. */
function payloadOf(frame: Buffer): Buffer {
  const masked = (frame[1]! & 0x80) !== 0;
  const length = frame[1]! & 0x7f;
  const start = masked ? 6 : 2;
  const payload = Buffer.from(frame.subarray(start, start + length));
  if (masked) for (let i = 0; i < length; i++) payload[i]! ^= frame[2 + (i & 3)]!;
  return payload;
}

describe('isValidCloseCode', () => {
  it('accepts the codes a peer may send', () => {
    for (const code of [
      1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 4000, 4999,
    ]) {
      assert.equal(isValidCloseCode(code), true, String(code));
    }
  });

  it('rejects reserved, local-only and out-of-range codes', () => {
    for (const code of [0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535]) {
      assert.equal(isValidCloseCode(code), false, String(code));
    }
  });
});

describe('encodeCloseFrame', () => {
  it('encodes an unmasked frame towards a client byte for byte', () => {
    assert.equal(encodeCloseFrame(1000, 'bye', false).toString('hex'), '880503e8627965');
    assert.equal(encodeCloseFrame(1001, '', false).toString('hex'), '880203e9');
  });

  it('masks the payload towards a backend with a fresh key', () => {
    const a = encodeCloseFrame(1008, 'policy', true);
    assert.equal(a[0], 0x88);
    assert.equal(a[1], 0x80 | 8);
    assert.equal(a.length, 2 + 4 + 8);
    assert.deepEqual(payloadOf(a), Buffer.concat([Buffer.from([0x03, 0xf0]), Buffer.from('policy')]));
    // A fixed key would let a payload be predicted (RFC 6455 §10.3); 8 tries all colliding is ~2^-224.
    const keys = new Set(
      Array.from({ length: 8 }, () => encodeCloseFrame(1000, '', true).subarray(2, 6).toString('hex')),
    );
    assert.ok(keys.size > 1);
  });

  it('keeps a reason of exactly 123 bytes and truncates a longer one', () => {
    const exact = encodeCloseFrame(1000, 'a'.repeat(123), false);
    assert.equal(exact[1], 125);
    assert.equal(payloadOf(exact).subarray(2).toString(), 'a'.repeat(123));
    const long = encodeCloseFrame(1000, 'b'.repeat(500), true);
    assert.equal(long[1], 0x80 | 125);
    assert.equal(long.length, 6 + 125);
    assert.equal(payloadOf(long).subarray(2).toString(), 'b'.repeat(123));
  });

  it('never splits a multi-byte character when truncating', () => {
    // 122 ASCII bytes + a 4-byte emoji: the emoji does not fit and is dropped whole.
    const frame = encodeCloseFrame(1011, `${'x'.repeat(122)}😀tail`, false);
    assert.equal(frame[1], 2 + 122);
    assert.equal(payloadOf(frame).subarray(2).toString(), 'x'.repeat(122));
    // 41 three-byte characters take exactly 123 bytes.
    const euro = encodeCloseFrame(1011, '€'.repeat(50), false);
    assert.equal(payloadOf(euro).subarray(2).toString(), '€'.repeat(41));
  });

  it('writes a lone surrogate as U+FFFD', () => {
    const frame = encodeCloseFrame(4000, 'a\ud800b', false);
    assert.equal(payloadOf(frame).subarray(2).toString('hex'), '61efbfbd62');
  });

  it('refuses codes that may not be sent', () => {
    for (const code of [1005, 1006, 999, 5000, 1000.5, Number.NaN]) {
      assert.throws(() => encodeCloseFrame(code, '', false), RangeError, String(code));
    }
  });
});
