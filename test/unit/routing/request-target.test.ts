/**
 * Which request targets and Host headers are refused before routing: anything but a plain path,
 * backslashes, fragments, dot segments in the path (raw or percent-encoded, any case) and several
 * Host headers; percent-encoded slashes, dots inside segment names and anything in the query pass.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkRequest, checkRequestTarget, headerCount } from '../../../src/routing/request-target.ts';

test('plain paths pass, including encoded slashes, dots inside names and dots in the query', () => {
  for (const target of [
    '/',
    '/chat',
    '/api/a%2Fb',
    '/a.b/c..d',
    '/.well-known/x',
    '/a/...',
    '/a/..b',
    '/a/%2e%2ex',
    '//double//slashes',
    '/socket.io/?EIO=4&transport=polling',
    '/x?next=/../admin',
    '/x?p=%2e%2e',
    '/x?q=a%5Cb',
  ]) {
    assert.equal(checkRequestTarget(target), undefined, target);
  }
});

test('absolute-form, asterisk-form and relative targets are refused', () => {
  for (const target of ['http://evil.example/x', '*', 'chat', '', '?x=1']) {
    assert.equal(checkRequestTarget(target), 'the request target is not a path', target);
  }
});

test('a backslash anywhere is refused', () => {
  for (const target of ['/\\evil:99999/', '/\\evil.example/x', '/a\\..\\b', '/x?q=\\']) {
    assert.equal(checkRequestTarget(target), 'the request target holds a backslash', target);
  }
});

test('a fragment is refused', () => {
  for (const target of ['/a#/../b', '/public/..#x', '/x?y#z']) {
    assert.equal(checkRequestTarget(target), 'the request target holds a fragment', target);
  }
});

test('dot segments are refused raw or percent-encoded, in any case, wherever they are in the path', () => {
  for (const target of [
    '/public/../secret',
    '/public/..',
    '/./x',
    '/a/.',
    '/a/%2e%2E/b',
    '/a/%2E/b',
    '/a/.%2e/b',
    '/a/%2e./b?x=1',
    '/public/%2E%2E',
  ]) {
    assert.equal(checkRequestTarget(target), 'the request path holds a dot segment', target);
  }
});

test('several Host headers are refused whatever their case; one is fine', () => {
  assert.equal(headerCount(['Host', 'a', 'X', 'y', 'host', 'b'], 'host'), 2);
  assert.equal(checkRequest({ url: '/', rawHeaders: ['Host', 'a', 'HOST', 'a'] }), 'several Host headers');
  assert.equal(checkRequest({ url: '/', rawHeaders: ['Host', 'a', 'X-Host', 'b'] }), undefined);
  assert.equal(
    checkRequest({ url: '/../x', rawHeaders: ['Host', 'a'] }),
    'the request path holds a dot segment',
  );
});
