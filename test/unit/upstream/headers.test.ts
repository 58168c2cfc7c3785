/**
 * The heads sent each way: hop-by-hop headers (and those named by Connection) dropped, WebSocket
 * headers kept in order, forwarding headers replaced, Host kept or overridden.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { noEdits } from '../../../src/front/request-stage.ts';
import { downstreamUpgradeHeaders, upstreamUpgradeHeaders } from '../../../src/upstream/headers.ts';

const forwarded = {
  clientAddress: '1.2.3.4',
  xForwardedFor: '1.2.3.4',
  xForwardedProto: 'https',
  xForwardedHost: 'a.test',
  fromTrustedProxy: false,
};

const pairs = (raw: string[]) =>
  Array.from({ length: raw.length / 2 }, (_, i) => [raw[2 * i], raw[2 * i + 1]]);

test('the backend gets the end-to-end headers, in order, plus Connection/Upgrade and X-Forwarded-*', () => {
  const raw = [
    'Host',
    'a.test',
    'Connection',
    'Upgrade, X-Secret-Hop',
    'Upgrade',
    'websocket',
    'X-Secret-Hop',
    'drop me',
    'Keep-Alive',
    'timeout=5',
    'Proxy-Authorization',
    'Basic xyz',
    'TE',
    'trailers',
    'Sec-WebSocket-Key',
    'dGhlIHNhbXBsZSBub25jZQ==',
    'Sec-WebSocket-Version',
    '13',
    'Sec-WebSocket-Protocol',
    'a, b',
    'Sec-WebSocket-Extensions',
    'permessage-deflate; client_max_window_bits',
    'X-Forwarded-For',
    '6.6.6.6',
    'Forwarded',
    'for=6.6.6.6',
    'Cookie',
    'sid=1',
  ];
  assert.deepEqual(
    pairs(
      upstreamUpgradeHeaders(raw, {
        edits: noEdits(),
        forwarded,
        hostOverride: undefined,
        requestId: 'req-1',
      }),
    ),
    [
      ['Host', 'a.test'],
      ['Sec-WebSocket-Key', 'dGhlIHNhbXBsZSBub25jZQ=='],
      ['Sec-WebSocket-Version', '13'],
      ['Sec-WebSocket-Protocol', 'a, b'],
      ['Sec-WebSocket-Extensions', 'permessage-deflate; client_max_window_bits'],
      ['Cookie', 'sid=1'],
      ['Connection', 'Upgrade'],
      ['Upgrade', 'websocket'],
      ['X-Forwarded-For', '1.2.3.4'],
      ['X-Forwarded-Proto', 'https'],
      ['X-Forwarded-Host', 'a.test'],
      ['X-Request-Id', 'req-1'],
    ],
  );
});

test('hostOverride replaces the Host header', () => {
  const out = pairs(
    upstreamUpgradeHeaders(['Host', 'a.test'], {
      edits: noEdits(),
      forwarded,
      hostOverride: 'backend:9000',
      requestId: 'req-1',
    }),
  );
  assert.deepEqual(
    out.filter(([name]) => name?.toLowerCase() === 'host'),
    [['Host', 'backend:9000']],
  );
});

test("the client's 101 keeps the backend's headers minus hop-by-hop ones", () => {
  const raw = [
    'Upgrade',
    'websocket',
    'Connection',
    'Upgrade, X-Internal',
    'X-Internal',
    'secret',
    'Sec-WebSocket-Accept',
    's3pPLMBiTxaQ9kYGzzhZRbK+xOo=',
    'Sec-WebSocket-Protocol',
    'b',
    'Set-Cookie',
    'a=1',
    'Set-Cookie',
    'b=2',
  ];
  assert.deepEqual(pairs(downstreamUpgradeHeaders(raw)), [
    ['Sec-WebSocket-Accept', 's3pPLMBiTxaQ9kYGzzhZRbK+xOo='],
    ['Sec-WebSocket-Protocol', 'b'],
    ['Set-Cookie', 'a=1'],
    ['Set-Cookie', 'b=2'],
    ['Upgrade', 'websocket'],
    ['Connection', 'Upgrade'],
  ]);
});

test('X-Real-IP, X-Forwarded-Port, -Prefix and -Server pass only from a trusted proxy', () => {
  const raw = [
    'Host',
    'a.test',
    'X-Real-IP',
    '6.6.6.6',
    'x-forwarded-port',
    '443',
    'X-Forwarded-Prefix',
    '/admin',
    'X-Forwarded-Server',
    'edge-1',
    'X-Kept',
    'yes',
  ];
  const names = (out: string[]) => pairs(out).map(([name]) => name);
  const untrusted = names(
    upstreamUpgradeHeaders(raw, {
      edits: noEdits(),
      forwarded,
      hostOverride: undefined,
      requestId: 'req-1',
    }),
  );
  assert.deepEqual(untrusted.slice(0, 2), ['Host', 'X-Kept']);
  for (const name of ['X-Real-IP', 'x-forwarded-port', 'X-Forwarded-Prefix', 'X-Forwarded-Server']) {
    assert.ok(!untrusted.includes(name), `${name} is dropped from an untrusted peer`);
  }
  const trusted = pairs(
    upstreamUpgradeHeaders(raw, {
      edits: noEdits(),
      forwarded: { ...forwarded, fromTrustedProxy: true },
      hostOverride: undefined,
      requestId: 'req-1',
    }),
  );
  assert.deepEqual(trusted.slice(0, 6), [
    ['Host', 'a.test'],
    ['X-Real-IP', '6.6.6.6'],
    ['x-forwarded-port', '443'],
    ['X-Forwarded-Prefix', '/admin'],
    ['X-Forwarded-Server', 'edge-1'],
    ['X-Kept', 'yes'],
  ]);
});
