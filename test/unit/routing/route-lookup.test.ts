/**
 * Routes are found the way a backend reads the path: unreserved escapes decoded, `//` merged, on
 * configured prefixes and request paths alike; an encoded slash is refused only where decoding it
 * would change the route or reveal a dot segment.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { RouteConfig } from '../../../src/config/schema.ts';
import { matchingPath } from '../../../src/protocol/path-key.ts';
import { checkHostValue, checkRequestTarget } from '../../../src/routing/request-target.ts';
import { RouteLookup } from '../../../src/routing/route-lookup.ts';

const route = (path: string): RouteConfig => ({ hosts: [], path, pool: 'p' });
const lookup = new RouteLookup({
  root: route('/'),
  solo: route('/solo/'),
  admin: route('/admin'),
  api: route('/api/'),
  tilde: route('/%7Euser/'),
});
const pick = (target: string): string | undefined => {
  const found = lookup.find(undefined, target);
  return found.refused ? `refused: ${found.refused}` : found.route?.name;
};

test('the matching key decodes unreserved escapes, upper-cases the rest and merges slashes', () => {
  const cases: [string, string][] = [
    ['/%73olo/x', '/solo/x'],
    ['/a%2fb', '/a%2Fb'],
    ['/%7euser', '/~user'],
    ['//admin///x', '/admin/x'],
    ['/%zz/%4', '/%zz/%4'],
    ['/caf%C3%A9', '/caf%C3%A9'],
  ];
  for (const [path, expected] of cases) assert.equal(matchingPath(path), expected, path);
});

test('regression: encoded and doubled spellings reach the route a decoding backend serves', () => {
  const cases: [string, string | undefined][] = [
    ['/%73olo/x', 'solo'],
    ['/%61dmin', 'admin'],
    ['//admin', 'admin'],
    ['/solo//x', 'solo'],
    ['/~user/page', 'tilde'],
    ['/%7Euser/page', 'tilde'],
    ['/other?x=%2F', 'root'],
  ];
  for (const [target, expected] of cases) assert.equal(pick(target), expected, target);
});

test('regression: an encoded slash is refused when it would change the route', () => {
  assert.match(String(pick('/solo%2fx')), /^refused: .*another route/, '/solo%2fx');
  assert.match(String(pick('/solo%5Cx')), /^refused/, '/solo%5Cx reads as /solo/x to some servers');
  assert.match(String(pick('/public%2F..%2Fadmin')), /^refused: .*dot segment/, 'a hidden dot segment');
});

test('an encoded slash that stays within its route is served', () => {
  assert.equal(pick('/api/group%2Fproject/issues'), 'api');
  assert.equal(pick('/files/a%2Fb'), 'root');
});

test('regression: path parameters cannot hide a dot segment or move a request off its route', () => {
  assert.equal(
    checkRequestTarget('/api/..;/admin'),
    'the request path holds a dot segment',
    '/api/..;/admin',
  );
  assert.equal(checkRequestTarget('/api/.;x/y'), 'the request path holds a dot segment', '/api/.;x/y');
  assert.equal(checkRequestTarget('/api/a;b/c'), undefined, 'ordinary path parameters pass');
  assert.equal(pick('/api;/x'), 'api', '/api;/x is /api/x to a servlet container');
  assert.equal(pick('/admin;jsessionid=1'), 'admin', 'a session parameter stays on its route');
  assert.equal(matchingPath('/a;x=1/b;y'), '/a/b');
});

test('regression: a Host that is not host[:port] is refused, whatever a URL parser would make of it', () => {
  const refused = [
    'public.example.com:1@admin.example.com',
    'evil.other.com, x.example.com',
    '[admin.example.com]',
    'a/evil',
    'a:abc',
    'a:99999',
    'a..b',
    'a b',
  ];
  for (const host of refused) assert.ok(checkHostValue(host), `${host} is refused`);
  const accepted = [
    'example.com',
    'a.example.com:8443',
    '127.0.0.1:80',
    '[::1]:8080',
    '[fe80::1]',
    'svc_name.local',
    'x.',
    '',
  ];
  for (const host of accepted) assert.equal(checkHostValue(host), undefined, `${host} is accepted`);
});

test('regression: a path whose letter case or double encoding would pick another route is refused', () => {
  assert.match(String(pick('/ADMIN/x')), /^refused: its letter case/, '/ADMIN/x is /admin/x to Express');
  assert.match(String(pick('/%61DMIN/x')), /^refused: its letter case/, '/%61DMIN/x');
  assert.match(String(pick('/solo%252Fx')), /^refused: a doubly encoded character/, '/solo%252Fx');
  assert.match(
    String(pick('/public/%252e%252e/x')),
    /^refused: .*dot segment/,
    'a doubly encoded dot segment',
  );
  assert.equal(pick('/Other/Page'), 'root', 'case does not matter where every reading stays on one route');
  const mixed = new RouteLookup({ root: route('/'), upper: route('/Static/') });
  assert.equal(mixed.find(undefined, '/Static/app.js').route?.name, 'upper');
  assert.match(String(mixed.find(undefined, '/static/app.js').refused), /letter case/);
});
