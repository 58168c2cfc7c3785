/**
 * The strict parser of a backend's answer head: a complete head with its length and raw headers,
 * `partial` until the blank line, and every lenient spelling (bare LF, obs-fold, a non-token name,
 * control characters, an oversized head, HTTP/2 or garbage, ambiguous framing) invalid.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { listsToken } from '../../../src/protocol/header-rules.ts';
import {
  type HeadParse,
  headerValue,
  parseResponseHead,
  type ResponseHead,
} from '../../../src/upstream/response-head.ts';

const CAP = 16 * 1024;

function parse(text: string, cap = CAP): HeadParse {
  return parseResponseHead(Buffer.from(text, 'latin1'), cap);
}

function headOf(text: string): ResponseHead {
  const parsed = parse(text);
  assert.equal(parsed.kind, 'head', `${JSON.stringify(text)} parses: ${JSON.stringify(parsed)}`);
  if (parsed.kind !== 'head') throw new Error('unreachable');
  return parsed.head;
}

function reasonOf(text: string, cap = CAP): string {
  const parsed = parse(text, cap);
  assert.equal(parsed.kind, 'invalid', `${JSON.stringify(text.slice(0, 80))} is refused`);
  return parsed.kind === 'invalid' ? parsed.reason : '';
}

test('a 101 head: status, raw headers in order with values trimmed, length through the blank line', () => {
  const text =
    'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection:  Upgrade \r\nSec-WebSocket-Accept: abc=\r\n\r\n';
  const head = headOf(`${text}\x81\x02hi`);
  assert.equal(head.status, 101);
  assert.equal(head.minorVersion, 1);
  assert.deepEqual(head.rawHeaders, [
    'Upgrade',
    'websocket',
    'Connection',
    'Upgrade',
    'Sec-WebSocket-Accept',
    'abc=',
  ]);
  assert.equal(head.length, Buffer.byteLength(text), 'the frame after the head is not part of it');
  assert.equal(headerValue(head, 'connection'), 'Upgrade');
  assert.equal(listsToken(headerValue(head, 'connection'), 'upgrade'), true);
});

test('a head is partial until its blank line, whichever byte the data stops at', () => {
  const text = 'HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n';
  for (let cut = 0; cut < text.length; cut++) {
    assert.equal(parse(text.slice(0, cut)).kind, 'partial', `cut at ${cut}`);
  }
  assert.equal(headOf(text).status, 403);
});

test('the status line: no reason phrase is fine, HTTP/1.0 is read as such, anything else is refused', () => {
  assert.equal(headOf('HTTP/1.1 101\r\n\r\n').status, 101);
  assert.equal(headOf('HTTP/1.1 404 \r\n\r\n').status, 404);
  assert.equal(headOf('HTTP/1.0 403 Forbidden\r\n\r\n').minorVersion, 0);
  for (const line of [
    'HTTP/2 101',
    'HTTP/1.1 1010 Too long',
    'HTTP/1.1 99 Low',
    'HTTP/1.1  101 x',
    'http/1.1 101 x',
    'HTTP/1.1 101 bad\x01',
  ]) {
    assert.match(reasonOf(`${line}\r\n\r\n`), /status line|not HTTP/, line);
  }
});

test('garbage is refused from its first bytes, without waiting for a blank line', () => {
  assert.match(reasonOf('SSH-2.0-OpenSSH'), /not HTTP/);
  assert.match(reasonOf('\x16\x03\x01'), /not HTTP/, 'a TLS record from a backend configured as http://');
  assert.equal(parse('HTT').kind, 'partial');
});

test('lenient header spellings are refused: bare LF or CR, obs-fold, bad names, control characters', () => {
  const cases: Record<string, string> = {
    'bare LF in a header line': 'HTTP/1.1 101 x\r\nUpgrade: websocket\nConnection: Upgrade\r\n\r\n',
    'bare CR in a value': 'HTTP/1.1 101 x\r\nX-A: a\rb\r\n\r\n',
    'obs-fold': 'HTTP/1.1 101 x\r\nX-A: a\r\n  b\r\n\r\n',
    'space before the colon': 'HTTP/1.1 101 x\r\nUpgrade : websocket\r\n\r\n',
    'no colon': 'HTTP/1.1 101 x\r\nUpgrade websocket\r\n\r\n',
    'empty name': 'HTTP/1.1 101 x\r\n: websocket\r\n\r\n',
    'NUL in a value': 'HTTP/1.1 101 x\r\nX-A: a\x00b\r\n\r\n',
    'non-token name': 'HTTP/1.1 101 x\r\nX(A): a\r\n\r\n',
  };
  for (const [what, text] of Object.entries(cases)) assert.ok(reasonOf(text), what);
});

test('a head larger than the cap is refused, with or without its blank line', () => {
  const big = `HTTP/1.1 101 x\r\nX-Pad: ${'a'.repeat(200)}\r\n`;
  assert.match(reasonOf(big, 100), /larger than 100/);
  assert.match(reasonOf(`${big}\r\n`, 100), /larger than 100/);
  assert.equal(headOf(`${big}\r\n`).status, 101, 'within the default cap');
});

test('body framing: length, chunked, close-delimited, none for 1xx/204/304; ambiguity is refused', () => {
  assert.deepEqual(headOf('HTTP/1.1 403 x\r\nContent-Length: 12\r\n\r\n').framing, {
    kind: 'length',
    bytes: 12,
  });
  assert.deepEqual(headOf('HTTP/1.1 403 x\r\nContent-Length: 5, 5\r\n\r\n').framing, {
    kind: 'length',
    bytes: 5,
  });
  assert.deepEqual(headOf('HTTP/1.1 403 x\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n').framing, {
    kind: 'chunked',
  });
  assert.deepEqual(headOf('HTTP/1.1 403 x\r\nTransfer-Encoding: gzip\r\n\r\n').framing, { kind: 'close' });
  assert.deepEqual(headOf('HTTP/1.1 403 x\r\n\r\n').framing, { kind: 'close' });
  for (const status of [101, 204, 304]) {
    assert.deepEqual(headOf(`HTTP/1.1 ${status} x\r\nContent-Length: 9\r\n\r\n`).framing, { kind: 'none' });
  }
  assert.match(reasonOf('HTTP/1.1 403 x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n'), /conflicting/);
  assert.match(reasonOf('HTTP/1.1 403 x\r\nContent-Length: 5, 6\r\n\r\n'), /conflicting/);
  assert.match(reasonOf('HTTP/1.1 403 x\r\nContent-Length: -1\r\n\r\n'), /malformed Content-Length/);
  assert.match(reasonOf('HTTP/1.1 403 x\r\nContent-Length: 0x10\r\n\r\n'), /malformed Content-Length/);
  assert.match(
    reasonOf('HTTP/1.1 403 x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n'),
    /both Transfer-Encoding and Content-Length/,
  );
  assert.match(
    reasonOf('HTTP/1.0 403 x\r\nTransfer-Encoding: chunked\r\n\r\n'),
    /Transfer-Encoding in an HTTP\/1.0 answer/,
  );
});

/** Parses `text` fed `step` bytes at a time, as connect.ts does: each call skips what was searched. */
function parseInSteps(text: string, step: number): HeadParse {
  const data = Buffer.from(text, 'latin1');
  let scanned = 0;
  for (let end = Math.min(step, data.length); ; end = Math.min(end + step, data.length)) {
    const parsed = parseResponseHead(data.subarray(0, end), CAP, scanned);
    if (parsed.kind !== 'partial' || end === data.length) return parsed;
    scanned = end;
  }
}

test('a head fed in pieces parses as it does whole, at every piece size', () => {
  const heads = [
    'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x00',
    'HTTP/1.1 403 x\r\nContent-Length: 2\r\n\r\nno',
    'HTTP/1.1 101 x\r\nUpgrade: websocket\nConnection: Upgrade\r\n\r\n', // bare LF
    'HTTP/1.1 101 x\r\nX-A: a\r\n\nb\r\n\r\n', // bare LF right after a CRLF
    'SSH-2.0-OpenSSH_9.2\r\n',
    'HTTP/1.1 101 x\r\nX-A: a\r\n  b\r\n\r\n', // obs-fold
  ];
  for (const text of heads) {
    const whole = parse(text);
    for (let step = 1; step <= 8; step++) {
      assert.deepEqual(parseInSteps(text, step), whole, `${JSON.stringify(text)} in pieces of ${step}`);
    }
  }
});

test('repeated headers are joined for reading and kept apart in the raw list', () => {
  const head = headOf('HTTP/1.1 101 x\r\nSec-WebSocket-Extensions: a\r\nsec-websocket-extensions: b\r\n\r\n');
  assert.equal(headerValue(head, 'sec-websocket-extensions'), 'a, b');
  assert.equal(head.rawHeaders.length, 4);
  assert.equal(headerValue(head, 'missing'), undefined);
  assert.equal(listsToken('keep-alive, Upgrade', 'upgrade'), true);
  assert.equal(listsToken('upgraded', 'upgrade'), false);
});

test('regression: a value with a long run of spaces inside it is read in linear time (one pattern took quadratic time)', {
  // Linear, this takes milliseconds; the quadratic pattern took minutes over a megabyte.
  timeout: 20_000,
}, () => {
  const spaces = ' '.repeat(1024 * 1024);
  const parsed = parse(`HTTP/1.1 101 Switching Protocols\r\nX-Pad: a${spaces}b\t \r\n\r\n`, 2 * 1024 * 1024);
  assert.equal(parsed.kind, 'head');
  if (parsed.kind === 'head') assert.deepEqual(parsed.head.rawHeaders, ['X-Pad', `a${spaces}b`]);
});

test('obs-text around a value is kept: only spaces and tabs are taken off', () => {
  assert.deepEqual(headOf('HTTP/1.1 101 OK\r\nX: \xa0v\xa0 \r\n\r\n').rawHeaders, ['X', '\xa0v\xa0']);
});
