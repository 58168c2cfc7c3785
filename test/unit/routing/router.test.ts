/**
 * Route selection: host specificity first (exact, longest wildcard suffix, any host), then the
 * longest path prefix; Host normalization (port, case, trailing dot, IPv6 literals).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { hostName } from '../../../src/routing/host.ts';
import { Router } from '../../../src/routing/router.ts';

const route = (hosts: string[], path: string, pool = 'p') => ({ hosts, path, pool });

const router = new Router({
  root: route([], '/'),
  chat: route([], '/chat'),
  chatRoom: route([], '/chat/room'),
  wildcard: route(['*.example.com'], '/'),
  deepWildcard: route(['*.eu.example.com'], '/'),
  exact: route(['api.example.com'], '/'),
  exactChat: route(['api.example.com'], '/chat'),
});

const pick = (host: string | undefined, url: string) => router.match(host, url)?.name;

test('the longest path prefix wins among routes for any host', () => {
  assert.equal(pick('other.test', '/'), 'root');
  assert.equal(pick('other.test', '/chat'), 'chat');
  assert.equal(pick('other.test', '/chat/room/1?x=/chat/room'), 'chatRoom');
  assert.equal(pick('other.test', '/chatroom'), 'chat', 'prefixes are plain string prefixes, as in nginx');
  assert.equal(pick(undefined, '/chat'), 'chat');
});

test('the query string does not take part in matching', () => {
  assert.equal(pick('other.test', '/x?/chat/room'), 'root');
});

test('an exact host beats a wildcard, a longer wildcard beats a shorter one', () => {
  assert.equal(pick('api.example.com', '/'), 'exact');
  assert.equal(pick('api.example.com', '/chat/x'), 'exactChat');
  assert.equal(pick('www.example.com', '/chat'), 'wildcard', 'host specificity comes before path length');
  assert.equal(pick('a.eu.example.com', '/'), 'deepWildcard');
  assert.equal(pick('example.com', '/'), 'root', 'a wildcard does not match the bare domain');
});

test('no route when nothing matches', () => {
  const narrow = new Router({ only: route(['a.test'], '/ws') });
  assert.equal(narrow.match('a.test', '/'), undefined);
  assert.equal(narrow.match('b.test', '/ws'), undefined);
  assert.equal(narrow.match('a.test', '/ws/1')?.poolName, 'p');
});

test('Host headers are normalized', () => {
  assert.equal(hostName('API.Example.COM:8443'), 'api.example.com');
  assert.equal(hostName('example.com.'), 'example.com');
  assert.equal(hostName('[::1]:8080'), '::1');
  assert.equal(hostName('127.0.0.1:80'), '127.0.0.1');
  assert.equal(hostName(''), undefined);
  assert.equal(hostName(undefined), undefined);
  assert.equal(hostName('[bad'), undefined);
});

test('regression: a Host of thousands of dots cost a wildcard lookup its length squared (a suffix hashed per dot)', () => {
  // Counted, not timed: the suffixes looked up for a 16 KiB host of labels one letter long.
  const host = `${'a.'.repeat(8_000)}a`;
  const get = Map.prototype.get;
  let lookups = 0;
  Map.prototype.get = function (this: Map<unknown, unknown>, key: unknown) {
    lookups++;
    return Reflect.apply(get, this, [key]);
  };
  let picked: string | undefined;
  try {
    picked = pick(host, '/');
  } finally {
    Map.prototype.get = get;
  }
  assert.equal(picked, 'root');
  // The exact host, then the dots within the longest wildcard suffix's reach (".eu.example.com").
  assert.ok(lookups <= 1 + '.eu.example.com'.length, `${lookups} map lookups`);
  assert.equal(pick(`${'a.'.repeat(8_000)}eu.example.com`, '/'), 'deepWildcard');
  assert.equal(pick(`${'a.'.repeat(8_000)}example.com`, '/'), 'wildcard');
});
