/**
 * X-Forwarded-* handling: replaced when the peer is not a trusted proxy, appended when it is, and
 * the client address is the nearest untrusted hop.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { forwardedFor, TrustedProxies } from '../../../src/listener/client-address.ts';

const none = new TrustedProxies([]);
const trusted = new TrustedProxies(['10.0.0.0/8', '192.168.1.1', 'fd00::/8']);

test('an untrusted peer cannot forge its address, proto or host', () => {
  const result = forwardedFor(none, '203.0.113.9', false, {
    host: 'chat.example.com',
    'x-forwarded-for': '1.2.3.4',
    'x-forwarded-proto': 'https',
    'x-forwarded-host': 'evil.example',
  });
  assert.deepEqual(result, {
    clientAddress: '203.0.113.9',
    xForwardedFor: '203.0.113.9',
    xForwardedProto: 'http',
    xForwardedHost: 'chat.example.com',
    fromTrustedProxy: false,
  });
  assert.equal(forwardedFor(none, '203.0.113.9', true, {}).xForwardedProto, 'https');
});

test('a trusted proxy has its headers kept and appended to', () => {
  const result = forwardedFor(trusted, '10.1.2.3', false, {
    host: 'internal:8080',
    'x-forwarded-for': '198.51.100.7, 192.168.1.1',
    'x-forwarded-proto': 'https',
    'x-forwarded-host': 'chat.example.com',
  });
  assert.deepEqual(result, {
    clientAddress: '198.51.100.7',
    xForwardedFor: '198.51.100.7, 192.168.1.1, 10.1.2.3',
    xForwardedProto: 'https',
    xForwardedHost: 'chat.example.com',
    fromTrustedProxy: true,
  });
});

test('the client is the nearest untrusted hop, not the leftmost (which a client can forge)', () => {
  const result = forwardedFor(trusted, '10.0.0.1', false, { 'x-forwarded-for': '6.6.6.6, 198.51.100.7' });
  assert.equal(result.clientAddress, '198.51.100.7');
});

test('IPv4-mapped IPv6 peers and IPv6 ranges are recognized', () => {
  assert.equal(trusted.has('::ffff:10.9.9.9'), true);
  assert.equal(trusted.has('fd12::1'), true);
  assert.equal(trusted.has('2001:db8::1'), false);
  assert.equal(trusted.has('not-an-ip'), false);
  assert.equal(none.has('10.0.0.1'), false);
});
