/**
 * The PROXY protocol parser on hand-written headers of both versions (IPv4, IPv6, LOCAL, UNKNOWN,
 * TLVs), on every way a header can be wrong (signature, syntax, addresses, ports, sizes, version,
 * command, family), on every prefix of every case (a header split across reads byte by byte), and
 * on random and mutated bytes: it answers incomplete, refused or header, never throws, never reads
 * past the header, and refuses garbage at its first byte.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  type ProxyAccept,
  type ProxyParse,
  parseProxyHeader,
  V1_MAX_LENGTH,
  V2_MAX_LENGTH,
} from '../../../src/listener/proxy-protocol.ts';

const SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);

/** A v2 header: command (0 LOCAL, 1 PROXY), family/transport byte, address bytes and TLVs. */
function v2(command: number, familyTransport: number, body: Buffer, version = 2): Buffer {
  const fixed = Buffer.alloc(4);
  fixed[0] = (version << 4) | command;
  fixed[1] = familyTransport;
  fixed.writeUInt16BE(body.length, 2);
  return Buffer.concat([SIGNATURE, fixed, body]);
}

function ipv4Body(
  source: number[],
  destination: number[],
  sourcePort: number,
  destinationPort: number,
): Buffer {
  const body = Buffer.alloc(12);
  Buffer.from(source).copy(body, 0);
  Buffer.from(destination).copy(body, 4);
  body.writeUInt16BE(sourcePort, 8);
  body.writeUInt16BE(destinationPort, 10);
  return body;
}

function ipv6Body(source: string, destination: string, sourcePort: number, destinationPort: number): Buffer {
  const body = Buffer.alloc(36);
  Buffer.from(source, 'hex').copy(body, 0);
  Buffer.from(destination, 'hex').copy(body, 16);
  body.writeUInt16BE(sourcePort, 32);
  body.writeUInt16BE(destinationPort, 34);
  return body;
}

/** A TLV (type, 2-byte length, value). */
function tlv(type: number, value: Buffer): Buffer {
  const head = Buffer.alloc(3);
  head[0] = type;
  head.writeUInt16BE(value.length, 1);
  return Buffer.concat([head, value]);
}

const AFTER = Buffer.from('GET / HTTP/1.1\r\n');

interface Valid {
  readonly name: string;
  readonly header: Buffer;
  readonly expected: ProxyParse;
}

const VALID: readonly Valid[] = [
  {
    name: 'v1 TCP4',
    header: Buffer.from('PROXY TCP4 198.51.100.7 203.0.113.1 51234 443\r\n'),
    expected: { kind: 'header', version: 'v1', length: 47, source: { address: '198.51.100.7', port: 51234 } },
  },
  {
    name: 'v1 TCP6, canonicalized',
    header: Buffer.from('PROXY TCP6 2001:DB8:0:0:0:0:0:7 2001:db8::1 65535 0\r\n'),
    expected: { kind: 'header', version: 'v1', length: 53, source: { address: '2001:db8::7', port: 65535 } },
  },
  {
    name: 'v1 UNKNOWN with addresses (ignored)',
    header: Buffer.from('PROXY UNKNOWN ffff:f::1 ffff:f::2 1 2\r\n'),
    expected: { kind: 'header', version: 'v1', length: 39, source: undefined },
  },
  {
    name: 'v1 UNKNOWN alone',
    header: Buffer.from('PROXY UNKNOWN\r\n'),
    expected: { kind: 'header', version: 'v1', length: 15, source: undefined },
  },
  {
    name: 'v1 of the longest length (the worst case of the spec)',
    header: Buffer.from(
      'PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n',
    ),
    expected: { kind: 'header', version: 'v1', length: V1_MAX_LENGTH, source: undefined },
  },
  {
    name: 'v1 TCP6 of the longest addresses',
    header: Buffer.from(
      'PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n',
    ),
    expected: {
      kind: 'header',
      version: 'v1',
      length: 104,
      source: { address: 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe', port: 65535 },
    },
  },
  {
    name: 'v2 PROXY TCP over IPv4',
    header: v2(1, 0x11, ipv4Body([192, 0, 2, 33], [10, 0, 0, 1], 40000, 443)),
    expected: { kind: 'header', version: 'v2', length: 28, source: { address: '192.0.2.33', port: 40000 } },
  },
  {
    name: 'v2 PROXY TCP over IPv6',
    header: v2(
      1,
      0x21,
      ipv6Body('20010db8000000000000000000000042', '20010db8000000000000000000000001', 1, 2),
    ),
    expected: { kind: 'header', version: 'v2', length: 52, source: { address: '2001:db8::42', port: 1 } },
  },
  {
    name: 'v2 IPv4-mapped IPv6, written as Node.js writes peers',
    header: v2(
      1,
      0x21,
      ipv6Body('00000000000000000000ffffc0000221', '00000000000000000000ffff0a000001', 5, 6),
    ),
    expected: {
      kind: 'header',
      version: 'v2',
      length: 52,
      source: { address: '::ffff:192.0.2.33', port: 5 },
    },
  },
  {
    name: 'v2 PROXY with TLVs after the addresses (skipped)',
    header: v2(
      1,
      0x11,
      Buffer.concat([
        ipv4Body([203, 0, 113, 9], [10, 0, 0, 1], 7, 443),
        tlv(0xea, Buffer.from('\x01vpce-0123456789abcdef')),
        tlv(0x04, Buffer.alloc(0)),
      ]),
    ),
    expected: {
      kind: 'header',
      version: 'v2',
      length: 28 + 25 + 3,
      source: { address: '203.0.113.9', port: 7 },
    },
  },
  {
    name: 'v2 LOCAL (a health check), addresses ignored',
    header: v2(0, 0x11, ipv4Body([1, 2, 3, 4], [5, 6, 7, 8], 1, 2)),
    expected: { kind: 'header', version: 'v2', length: 28, source: undefined },
  },
  {
    name: 'v2 LOCAL with nothing after the fixed part',
    header: v2(0, 0x00, Buffer.alloc(0)),
    expected: { kind: 'header', version: 'v2', length: 16, source: undefined },
  },
  {
    name: 'v2 PROXY over UNSPEC',
    header: v2(1, 0x00, Buffer.alloc(0)),
    expected: { kind: 'header', version: 'v2', length: 16, source: undefined },
  },
  {
    name: 'v2 PROXY over a UNIX socket',
    header: v2(1, 0x31, Buffer.alloc(216)),
    expected: { kind: 'header', version: 'v2', length: 232, source: undefined },
  },
  {
    name: 'v2 of the largest length accepted',
    header: v2(1, 0x11, Buffer.concat([ipv4Body([1, 1, 1, 1], [2, 2, 2, 2], 3, 4), Buffer.alloc(2048 - 12)])),
    expected: {
      kind: 'header',
      version: 'v2',
      length: V2_MAX_LENGTH,
      source: { address: '1.1.1.1', port: 3 },
    },
  },
];

interface Invalid {
  readonly name: string;
  readonly bytes: Buffer;
  readonly reason: 'invalid' | 'too_large' | 'wrong_version';
  readonly accept?: ProxyAccept;
}

const INVALID: readonly Invalid[] = [
  { name: 'an HTTP request', bytes: Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'), reason: 'invalid' },
  { name: 'a TLS ClientHello', bytes: Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01]), reason: 'invalid' },
  { name: 'lower-case proxy', bytes: Buffer.from('proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n'), reason: 'invalid' },
  { name: 'lower-case tcp4', bytes: Buffer.from('PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n'), reason: 'invalid' },
  { name: 'TCP5', bytes: Buffer.from('PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n'), reason: 'invalid' },
  { name: 'a missing port', bytes: Buffer.from('PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n'), reason: 'invalid' },
  { name: 'an extra field', bytes: Buffer.from('PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n'), reason: 'invalid' },
  { name: 'two spaces', bytes: Buffer.from('PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n'), reason: 'invalid' },
  { name: 'an IPv6 address in TCP4', bytes: Buffer.from('PROXY TCP4 ::1 ::1 1 2\r\n'), reason: 'invalid' },
  {
    name: 'an IPv4 address in TCP6',
    bytes: Buffer.from('PROXY TCP6 1.2.3.4 ::1 1 2\r\n'),
    reason: 'invalid',
  },
  {
    name: 'an address with a zone',
    bytes: Buffer.from('PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n'),
    reason: 'invalid',
  },
  { name: 'a host name', bytes: Buffer.from('PROXY TCP4 localhost 5.6.7.8 1 2\r\n'), reason: 'invalid' },
  {
    name: 'an octet over 255',
    bytes: Buffer.from('PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n'),
    reason: 'invalid',
  },
  { name: 'port 65536', bytes: Buffer.from('PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n'), reason: 'invalid' },
  {
    name: 'a port with a leading zero',
    bytes: Buffer.from('PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n'),
    reason: 'invalid',
  },
  { name: 'a negative port', bytes: Buffer.from('PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n'), reason: 'invalid' },
  { name: 'LF without CR', bytes: Buffer.from('PROXY TCP4 1.2.3.4 5.6.7.8 1 2\nGET'), reason: 'invalid' },
  { name: 'CR without LF', bytes: Buffer.from('PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rGET'), reason: 'invalid' },
  { name: 'a NUL byte', bytes: Buffer.from('PROXY TCP4 1.2.3.4\x00 5.6.7.8 1 2\r\n'), reason: 'invalid' },
  { name: 'a non-ASCII byte', bytes: Buffer.from('PROXY TCP4 1.2.3.4 5.6.7.8 1 2é\r\n'), reason: 'invalid' },
  {
    name: 'a v1 header without CRLF in 107 bytes',
    bytes: Buffer.from(`PROXY UNKNOWN ${'x'.repeat(200)}\r\n`),
    reason: 'too_large',
  },
  {
    name: 'v1 header one byte too long',
    bytes: Buffer.from(`PROXY UNKNOWN ${'x'.repeat(V1_MAX_LENGTH - 15)}\r\n`),
    reason: 'too_large',
  },
  {
    name: 'a v2 signature off by one byte',
    bytes: Buffer.from([...SIGNATURE.subarray(0, 11), 0x0b]),
    reason: 'invalid',
  },
  {
    name: 'v2 version 1',
    bytes: v2(1, 0x11, ipv4Body([1, 2, 3, 4], [5, 6, 7, 8], 1, 2), 1),
    reason: 'invalid',
  },
  {
    name: 'v2 version 3',
    bytes: v2(1, 0x11, ipv4Body([1, 2, 3, 4], [5, 6, 7, 8], 1, 2), 3),
    reason: 'invalid',
  },
  { name: 'v2 command 2', bytes: v2(2, 0x11, ipv4Body([1, 2, 3, 4], [5, 6, 7, 8], 1, 2)), reason: 'invalid' },
  { name: 'v2 family 4', bytes: v2(1, 0x41, Buffer.alloc(12)), reason: 'invalid' },
  { name: 'v2 transport 3', bytes: v2(1, 0x13, Buffer.alloc(12)), reason: 'invalid' },
  { name: 'v2 IPv4 with 11 address bytes', bytes: v2(1, 0x11, Buffer.alloc(11)), reason: 'invalid' },
  { name: 'v2 IPv6 with 12 address bytes', bytes: v2(1, 0x21, Buffer.alloc(12)), reason: 'invalid' },
  { name: 'v2 UNIX with 100 address bytes', bytes: v2(1, 0x31, Buffer.alloc(100)), reason: 'invalid' },
  { name: 'v2 one byte over the bound', bytes: v2(1, 0x11, Buffer.alloc(2049)), reason: 'too_large' },
  {
    name: 'v2 announcing 65535 bytes (refused before they come)',
    bytes: Buffer.concat([SIGNATURE, Buffer.from([0x21, 0x11, 0xff, 0xff])]),
    reason: 'too_large',
  },
  {
    name: 'v1 on a v2 listener',
    bytes: Buffer.from('PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n'),
    reason: 'wrong_version',
    accept: 'v2',
  },
  {
    name: 'v2 on a v1 listener',
    bytes: v2(1, 0x11, ipv4Body([1, 2, 3, 4], [5, 6, 7, 8], 1, 2)),
    reason: 'wrong_version',
    accept: 'v1',
  },
];

const ACCEPTS: readonly ProxyAccept[] = ['v1', 'v2', 'any'];

function assertWellFormed(result: ProxyParse, input: Buffer): void {
  assert.ok(['incomplete', 'refused', 'header'].includes(result.kind));
  if (result.kind === 'header') {
    assert.ok(result.length > 0 && result.length <= input.length);
    assert.ok(result.length <= Math.max(V1_MAX_LENGTH, V2_MAX_LENGTH));
  }
  if (result.kind === 'refused') assert.ok(['invalid', 'too_large', 'wrong_version'].includes(result.reason));
}

for (const { name, header, expected } of VALID) {
  test(`parses ${name}, leaving what follows untouched`, () => {
    const accept: ProxyAccept = expected.kind === 'header' ? expected.version : 'any';
    assert.deepEqual(parseProxyHeader(header, accept), expected);
    assert.deepEqual(parseProxyHeader(header, 'any'), expected);
    assert.deepEqual(parseProxyHeader(Buffer.concat([header, AFTER]), 'any'), expected);
  });

  test(`${name}: every prefix is incomplete (a header split byte by byte)`, () => {
    for (let end = 0; end < header.length; end++) {
      assert.deepEqual(
        parseProxyHeader(header.subarray(0, end), 'any'),
        { kind: 'incomplete' },
        `${end} bytes`,
      );
    }
  });
}

for (const { name, bytes, reason, accept = 'any' } of INVALID) {
  test(`refuses ${name}: ${reason}`, () => {
    const result = parseProxyHeader(bytes, accept);
    assert.equal(result.kind, 'refused');
    assert.equal(result.kind === 'refused' && result.reason, reason);
    // No prefix is ever taken for a header.
    for (let end = 0; end <= bytes.length; end++) {
      assert.notEqual(parseProxyHeader(bytes.subarray(0, end), accept).kind, 'header', `${end} bytes`);
    }
  });
}

test('refuses bytes that cannot start a header at the first byte', () => {
  for (const first of ['G', 'P'.toLowerCase(), '\x16', '\x00', ' ']) {
    assert.equal(
      parseProxyHeader(Buffer.from(first, 'latin1'), 'any').kind,
      'refused',
      JSON.stringify(first),
    );
  }
  assert.equal(parseProxyHeader(Buffer.from('PROXZ'), 'any').kind, 'refused');
  assert.equal(parseProxyHeader(Buffer.from('\r\n\r\n\x00\r\nQUIX'), 'any').kind, 'refused');
  // The other version's signature is waited for, then refused, on a listener of one version.
  assert.deepEqual(parseProxyHeader(Buffer.from('PROX'), 'v2'), { kind: 'incomplete' });
  assert.equal(parseProxyHeader(Buffer.from('PROXY '), 'v2').kind, 'refused');
});

test('never throws and answers within bounds on random bytes', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), fc.constantFrom(...ACCEPTS), (bytes, accept) => {
      const input = Buffer.from(bytes);
      assertWellFormed(parseProxyHeader(input, accept), input);
    }),
    { numRuns: 2_000 },
  );
});

test('never throws on valid headers with bytes changed, cut or added', () => {
  fc.assert(
    fc.property(
      fc.constantFrom(...VALID.map((valid) => valid.header)),
      fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }),
      fc.nat(),
      fc.uint8Array({ maxLength: 40 }),
      fc.constantFrom(...ACCEPTS),
      (header, changes, cut, tail, accept) => {
        const input = Buffer.from(header);
        for (const [at, value] of changes) input[at % input.length] = value;
        const bytes = Buffer.concat([input.subarray(0, cut % (input.length + 1)), Buffer.from(tail)]);
        assertWellFormed(parseProxyHeader(bytes, accept), bytes);
      },
    ),
    { numRuns: 3_000 },
  );
});

test('v2 headers with random addresses and TLVs parse to their length', () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 12, maxLength: 12 }),
      fc.uint8Array({ maxLength: 200 }),
      (address, tlvs) => {
        const header = v2(1, 0x11, Buffer.concat([Buffer.from(address), Buffer.from(tlvs)]));
        const result = parseProxyHeader(Buffer.concat([header, AFTER]), 'v2');
        assert.equal(result.kind, 'header');
        assert.equal(result.kind === 'header' && result.length, header.length);
        assert.equal(
          result.kind === 'header' && result.source?.address,
          [...address.subarray(0, 4)].join('.'),
        );
      },
    ),
  );
});
