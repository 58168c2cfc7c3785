/**
 * Origins and allowlist entries (RFC 6454): normalized alike (case, default ports, IDN), exact
 * entries match one origin, a wildcard only names under its domain, `null` only an explicit
 * `null`, and what is not a serialized origin is malformed.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkOrigin, type OriginPattern, parseOriginPattern } from '../../../src/protocol/origin.ts';

function patterns(...entries: string[]): OriginPattern[] {
  return entries.map((entry) => {
    const pattern = parseOriginPattern(entry);
    assert.ok(!('problem' in pattern), entry);
    return pattern;
  });
}

test('exact entries compare scheme, host and port, normalized', () => {
  const allow = patterns('https://App.Example.com', 'http://localhost:3000', 'https://bücher.example');
  assert.equal(checkOrigin('https://app.example.com', allow), 'allowed');
  assert.equal(checkOrigin('https://APP.EXAMPLE.COM:443', allow), 'allowed', 'case and the default port');
  assert.equal(checkOrigin('http://localhost:3000', allow), 'allowed');
  assert.equal(checkOrigin('https://xn--bcher-kva.example', allow), 'allowed', 'IDN in punycode');
  assert.equal(checkOrigin('http://app.example.com', allow), 'not_allowed', 'another scheme');
  assert.equal(checkOrigin('https://app.example.com:8443', allow), 'not_allowed', 'another port');
  assert.equal(checkOrigin('http://localhost', allow), 'not_allowed');
});

test('a wildcard matches names under its domain only', () => {
  const allow = patterns('https://*.example.com');
  assert.equal(checkOrigin('https://a.example.com', allow), 'allowed');
  assert.equal(checkOrigin('https://a.b.example.com', allow), 'allowed');
  for (const origin of [
    'https://example.com',
    'https://example.com.evil.net',
    'https://evilexample.com',
    'https://a.example.co',
  ]) {
    assert.equal(checkOrigin(origin, allow), 'not_allowed', origin);
  }
});

test('null matches only an explicit null entry; what is not an origin is malformed', () => {
  assert.equal(checkOrigin('null', patterns('https://a.example.com')), 'not_allowed');
  assert.equal(checkOrigin('null', patterns('null')), 'allowed');
  for (const value of [
    '',
    'garbage',
    'https://a.example.com/path',
    'https://a.example.com?x',
    'ftp://a.example.com',
    'https://user@a.example.com',
  ]) {
    assert.equal(checkOrigin(value, patterns('https://a.example.com')), 'malformed', value);
  }
});

test('entries that are not origins, or wildcards over a whole top-level domain, are refused', () => {
  for (const entry of [
    'app.example.com',
    'https://a.example.com/path',
    'ftp://a.example.com',
    'https://*.com',
    '*',
  ]) {
    assert.ok('problem' in parseOriginPattern(entry), entry);
  }
});
