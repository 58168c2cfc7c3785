/**
 * Choosing the keys a token may be verified with, and reading key files and JWKS documents:
 * by `kid` first, by key type always (an RSA key never checks an ES256 token), kid-less tokens
 * tried against a bounded number of keys, and secret or encryption keys never taken from a JWKS.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { test } from 'node:test';
import { candidatesFor, parseJwks, parseKeyFile, type VerifyKey } from '../../../src/keys/key-material.ts';

function rsa(kid: string | undefined, alg?: string): VerifyKey {
  return { key: generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey, kid, alg };
}
const ec: VerifyKey = {
  key: generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey,
  kid: 'e1',
  alg: undefined,
};

test('keys are chosen by kid, then by type; a kid no key has falls back to the keys without one', () => {
  const a = rsa('a');
  const b = rsa('b', 'RS256');
  const pem = rsa(undefined);
  const keys = [a, b, pem, ec];
  assert.deepEqual(candidatesFor(keys, 'a', 'RS256'), [a]);
  assert.deepEqual(candidatesFor(keys, 'b', 'PS256'), [pem], 'b is pinned to RS256');
  assert.deepEqual(candidatesFor(keys, 'e1', 'RS256'), [pem], 'an EC key never checks an RSA token');
  assert.deepEqual(candidatesFor(keys, 'e1', 'ES256'), [ec]);
  assert.deepEqual(candidatesFor(keys, 'zz', 'RS256'), [pem]);
  assert.deepEqual(candidatesFor(keys, undefined, 'RS256'), [pem]);
  assert.deepEqual(candidatesFor(keys, 'a', 'HS256'), [], 'no public key is an HMAC secret');
});

test('a token without a kid, when every key has one, is tried against at most four keys of its type', () => {
  const keys = Array.from({ length: 10 }, (_, i) => rsa(`k${i}`));
  assert.equal(candidatesFor(keys, undefined, 'RS256').length, 4);
  assert.deepEqual(candidatesFor(keys, 'nope', 'RS256'), [], 'an unknown kid is not a wildcard');
});

test('a JWKS gives its signing keys only; a document without one is refused', () => {
  const jwk = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ format: 'jwk' });
  const parsed = parseJwks({
    keys: [
      { ...jwk, kid: 'sig' },
      { ...jwk, kid: 'enc', use: 'enc' },
      { kty: 'oct', k: 'c2VjcmV0', kid: 'secret' },
      { ...jwk, kid: 'wrap', key_ops: ['wrapKey'] },
      'garbage',
    ],
  });
  assert.ok('keys' in parsed);
  assert.deepEqual(
    parsed.keys.map((key) => key.kid),
    ['sig'],
  );
  assert.equal(parsed.skipped, 4);
  assert.deepEqual(parseJwks({ keys: [{ kty: 'oct', k: 'c2VjcmV0' }] }), {
    problem: 'the JWKS holds no usable signing key',
  });
  assert.deepEqual(parseJwks({ nope: [] }), { problem: 'not a JWKS document (no "keys" list)' });
});

test('key files: a PEM public key, a certificate, a private key reduced to its public half, a JWK', () => {
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const spki = parseKeyFile(Buffer.from(publicKey.export({ format: 'pem', type: 'spki' })));
  assert.ok('keys' in spki && spki.keys[0]?.key.type === 'public');
  const fromPrivate = parseKeyFile(Buffer.from(privateKey.export({ format: 'pem', type: 'pkcs8' })));
  assert.ok('keys' in fromPrivate && fromPrivate.keys[0]?.key.type === 'public');
  const jwk = parseKeyFile(Buffer.from(JSON.stringify({ ...publicKey.export({ format: 'jwk' }), kid: 'j' })));
  assert.ok('keys' in jwk && jwk.keys[0]?.kid === 'j');
  const certificate = parseKeyFile(
    readFileSync(resolve(import.meta.dirname, '../../fixtures/tls/server.pem')),
  );
  assert.ok('keys' in certificate && certificate.keys[0]?.key.asymmetricKeyType === 'ec');
  assert.deepEqual(parseKeyFile(Buffer.from('{ nope')), { problem: 'not valid JSON' });
  assert.deepEqual(parseKeyFile(Buffer.from(JSON.stringify({ kty: 'oct', k: 'eA' }))), {
    problem: 'a secret (oct) key cannot be a public key',
  });
});
