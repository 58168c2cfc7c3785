/**
 * RFC 6455 §4.2.1 checks on the opening handshake and the RSV bits an extension answer allows.
 */
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { test } from 'node:test';
import { allowedRsvBits } from '../../../src/upgrade/extensions.ts';
import { checkHandshake } from '../../../src/upgrade/stages/handshake.ts';

function request(overrides: {
  method?: string;
  version?: [number, number];
  headers?: Record<string, string | undefined>;
}) {
  const headers: Record<string, string | undefined> = {
    host: 'a.test',
    upgrade: 'websocket',
    connection: 'keep-alive, Upgrade',
    'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==',
    'sec-websocket-version': '13',
    ...overrides.headers,
  };
  const [major, minor] = overrides.version ?? [1, 1];
  return {
    method: overrides.method ?? 'GET',
    httpVersionMajor: major,
    httpVersionMinor: minor,
    httpVersion: `${major}.${minor}`,
    headers: Object.fromEntries(Object.entries(headers).filter(([, value]) => value !== undefined)),
  } as unknown as IncomingMessage;
}

test('a valid handshake passes (tokens are case-insensitive and may be listed)', () => {
  assert.equal(checkHandshake(request({})), undefined);
  assert.equal(
    checkHandshake(request({ headers: { upgrade: 'WebSocket', connection: 'UPGRADE' } })),
    undefined,
  );
});

test('each malformed handshake gets its code', () => {
  const cases: [string, Parameters<typeof request>[0], string][] = [
    ['method POST', { method: 'POST' }, 'HANDSHAKE_METHOD_NOT_ALLOWED'],
    ['HTTP/1.0', { version: [1, 0] }, 'HANDSHAKE_MALFORMED'],
    ['no Host', { headers: { host: undefined } }, 'HANDSHAKE_MALFORMED'],
    ['Upgrade: h2c', { headers: { upgrade: 'h2c' } }, 'HANDSHAKE_MALFORMED'],
    ['Connection without Upgrade', { headers: { connection: 'keep-alive' } }, 'HANDSHAKE_MALFORMED'],
    ['no Sec-WebSocket-Key', { headers: { 'sec-websocket-key': undefined } }, 'HANDSHAKE_MALFORMED'],
    [
      'Sec-WebSocket-Key of 4 bytes, not 16',
      { headers: { 'sec-websocket-key': 'c2hvcnQ=' } },
      'HANDSHAKE_MALFORMED',
    ],
    [
      'Sec-WebSocket-Version: 8',
      { headers: { 'sec-websocket-version': '8' } },
      'HANDSHAKE_VERSION_UNSUPPORTED',
    ],
    [
      'no Sec-WebSocket-Version',
      { headers: { 'sec-websocket-version': undefined } },
      'HANDSHAKE_VERSION_UNSUPPORTED',
    ],
  ];
  for (const [what, overrides, expected] of cases) {
    assert.equal(checkHandshake(request(overrides))?.code, expected, what);
  }
});

test('405 carries Allow: GET and 426 carries the supported version', () => {
  assert.deepEqual(checkHandshake(request({ method: 'PUT' }))?.headers, [['Allow', 'GET']]);
  assert.deepEqual(checkHandshake(request({ headers: { 'sec-websocket-version': '7' } }))?.headers, [
    ['Sec-WebSocket-Version', '13'],
  ]);
});

test('RSV bits follow the negotiated extensions', () => {
  assert.equal(allowedRsvBits(undefined), 0);
  assert.equal(allowedRsvBits(''), 0);
  assert.equal(allowedRsvBits('permessage-deflate; server_no_context_takeover'), 0x40);
  assert.equal(allowedRsvBits('x-custom-ext'), 0x70);
});
