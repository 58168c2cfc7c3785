/**
 * The signature of a token, through verifyToken: every algorithm family verifies with the keys it
 * is meant for (tokens signed with jose, and by hand with node:crypto where jose signs no such
 * token), and refuses a signature of another shape (ECDSA in DER, truncated, PSS with another
 * salt), a key of another kind, type or curve, and RSA keys under 2048 bits.
 */
import assert from 'node:assert/strict';
import {
  constants,
  createHmac,
  createSecretKey,
  generateKeyPairSync,
  type KeyObject,
  type SignKeyObjectInput,
  sign,
} from 'node:crypto';
import { test } from 'node:test';
import { SignJWT } from 'jose';
import { jwsAlgorithm } from '../../../src/auth/jws-signature.ts';
import type { KeySet } from '../../../src/auth/key-lookup.ts';
import { type TokenRules, type TokenVerdict, verifyToken } from '../../../src/auth/verify-token.ts';
import { ASYMMETRIC_ALGORITHMS, HMAC_ALGORITHMS } from '../../../src/config/auth-schema.ts';

const NOW_MS = 1_700_000_000_000;
const NOW = NOW_MS / 1000;
const CLAIMS = { sub: 'user-1', iat: NOW, exp: NOW + 600 };

const RULES: TokenRules = {
  algorithms: [...HMAC_ALGORITHMS, ...ASYMMETRIC_ALGORITHMS],
  issuer: undefined,
  audience: undefined,
  clockToleranceMs: 30_000,
  requireExpiry: true,
  requiredClaims: [],
};

const secret = createSecretKey(Buffer.from('s'.repeat(64)));
const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const pssKey = generateKeyPairSync('rsa-pss', {
  modulusLength: 2048,
  hashAlgorithm: 'sha256',
  mgf1HashAlgorithm: 'sha256',
});
const p256 = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' });
const p521 = generateKeyPairSync('ec', { namedCurve: 'P-521' });
const ed25519 = generateKeyPairSync('ed25519');
const ed448 = generateKeyPairSync('ed448');

function keys(...list: KeyObject[]): KeySet {
  return { kind: 'public', lookup: () => ({ keys: list }), start() {}, stop() {} };
}

function check(token: string, ...list: KeyObject[]): Promise<TokenVerdict> {
  return verifyToken(token, keys(...list), RULES, NOW_MS);
}

const b64 = (value: string | Buffer): string => Buffer.from(value).toString('base64url');

/** A token signed by hand: `signer` gets the signing input and returns the signature bytes. */
function byHand(alg: string, signer: (input: Buffer) => Buffer, claims: object = CLAIMS): string {
  const input = `${b64(JSON.stringify({ alg }))}.${b64(JSON.stringify(claims))}`;
  return `${input}.${b64(signer(Buffer.from(input)))}`;
}

const withJose = (alg: string, key: KeyObject): Promise<string> =>
  new SignJWT(CLAIMS).setProtectedHeader({ alg }).sign(key);

function refusal(verdict: TokenVerdict): string {
  return verdict.ok ? 'ok' : verdict.refusal;
}

test('every algorithm family verifies with its own key', async () => {
  const cases: [string, KeyObject, KeyObject][] = [
    ['HS256', secret, secret],
    ['HS384', secret, secret],
    ['HS512', secret, secret],
    ['RS256', rsa.privateKey, rsa.publicKey],
    ['RS384', rsa.privateKey, rsa.publicKey],
    ['RS512', rsa.privateKey, rsa.publicKey],
    ['PS256', rsa.privateKey, rsa.publicKey],
    ['PS384', rsa.privateKey, rsa.publicKey],
    ['PS512', rsa.privateKey, rsa.publicKey],
    ['ES256', p256.privateKey, p256.publicKey],
    ['ES384', p384.privateKey, p384.publicKey],
    ['ES512', p521.privateKey, p521.publicKey],
    ['EdDSA', ed25519.privateKey, ed25519.publicKey],
    ['Ed25519', ed25519.privateKey, ed25519.publicKey],
  ];
  for (const [alg, signing, verifying] of cases) {
    const verdict = await check(await withJose(alg, signing), verifying);
    assert.equal(refusal(verdict), 'ok', `${alg}: ${verdict.ok ? '' : verdict.detail}`);
  }
});

test('EdDSA verifies Ed448 too; PS256 verifies with an RSA-PSS key', async () => {
  const ed = byHand('EdDSA', (input) => sign(null, input, ed448.privateKey));
  assert.equal(refusal(await check(ed, ed448.publicKey)), 'ok');
  const pss = byHand('PS256', (input) =>
    sign('sha256', input, {
      key: pssKey.privateKey,
      padding: constants.RSA_PKCS1_PSS_PADDING,
      saltLength: 32,
    }),
  );
  assert.equal(refusal(await check(pss, pssKey.publicKey)), 'ok');
});

test('a signature by another key of the same family does not verify', async () => {
  const other = {
    HS256: createSecretKey(Buffer.from('t'.repeat(64))),
    RS256: generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey,
    ES256: generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey,
    EdDSA: generateKeyPairSync('ed25519').privateKey,
  };
  const verifying = { HS256: secret, RS256: rsa.publicKey, ES256: p256.publicKey, EdDSA: ed25519.publicKey };
  for (const alg of ['HS256', 'RS256', 'ES256', 'EdDSA'] as const) {
    const verdict = await check(await withJose(alg, other[alg]), verifying[alg]);
    assert.equal(refusal(verdict), 'signature', alg);
  }
});

test('ES256 takes the raw r || s signature only: DER, truncated or padded is refused', async () => {
  const der = byHand('ES256', (input) => sign('sha256', input, p256.privateKey));
  assert.equal(
    refusal(await check(der, p256.publicKey)),
    'signature',
    'DER (dsaEncoding must be ieee-p1363)',
  );
  const raw = (input: Buffer) => sign('sha256', input, { key: p256.privateKey, dsaEncoding: 'ieee-p1363' });
  assert.equal(refusal(await check(byHand('ES256', raw), p256.publicKey)), 'ok');
  const truncated = byHand('ES256', (input) => raw(input).subarray(0, 63));
  assert.equal(refusal(await check(truncated, p256.publicKey)), 'signature', 'truncated');
  const padded = byHand('ES256', (input) => Buffer.concat([raw(input), Buffer.of(0)]));
  assert.equal(refusal(await check(padded, p256.publicKey)), 'signature', 'one byte too many');
  const es = jwsAlgorithm('ES256');
  assert.equal(es?.verify(p256.publicKey, Buffer.from('x'), Buffer.alloc(64)), false, 'a zero signature');
});

test('an ECDSA key on another curve is no key for the algorithm', async () => {
  const token = await withJose('ES256', p256.privateKey);
  const verdict = await check(token, p384.publicKey);
  assert.equal(refusal(verdict), 'unknown_key');
  assert.match(verdict.ok ? '' : verdict.detail, /curve secp384r1, ES256 needs P-256/);
  assert.equal(refusal(await check(token, p384.publicKey, p256.publicKey)), 'ok', 'the next key fits');
  assert.equal(refusal(await check(await withJose('ES384', p384.privateKey), p521.publicKey)), 'unknown_key');
});

test('RSA keys under 2048 bits are refused, for RS* and PS*', async () => {
  const short = generateKeyPairSync('rsa', { modulusLength: 1024 });
  for (const [alg, options] of [
    ['RS256', { key: short.privateKey }],
    ['PS256', { key: short.privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }],
  ] as [string, SignKeyObjectInput][]) {
    const token = byHand(alg, (input) => sign('sha256', input, options));
    const verdict = await check(token, short.publicKey);
    assert.equal(refusal(verdict), 'unknown_key', alg);
    assert.equal(verdict.ok ? '' : verdict.detail, 'RSA key shorter than 2048 bits');
  }
});

test('PSS needs a salt as long as the hash', async () => {
  const salted = (saltLength: number) =>
    byHand('PS256', (input) =>
      sign('sha256', input, { key: rsa.privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength }),
    );
  assert.equal(refusal(await check(salted(32), rsa.publicKey)), 'ok');
  assert.equal(refusal(await check(salted(20), rsa.publicKey)), 'signature');
  assert.equal(refusal(await check(salted(0), rsa.publicKey)), 'signature');
});

test('an RSA-PSS key restricted to other hashes or a longer salt is no key for the algorithm', async () => {
  const mgf512 = generateKeyPairSync('rsa-pss', {
    modulusLength: 2048,
    hashAlgorithm: 'sha256',
    mgf1HashAlgorithm: 'sha512',
  });
  // Signed as the key's parameters say: node:crypto would verify it with MGF1-SHA512.
  const token = byHand('PS256', (input) =>
    sign('sha256', input, {
      key: mgf512.privateKey,
      padding: constants.RSA_PKCS1_PSS_PADDING,
      saltLength: 32,
    }),
  );
  const verdict = await check(token, mgf512.publicKey);
  assert.equal(refusal(verdict), 'unknown_key');
  assert.match(verdict.ok ? '' : verdict.detail, /restricted to sha256\/sha512/);
  const sha384 = generateKeyPairSync('rsa-pss', { modulusLength: 2048, hashAlgorithm: 'sha384' });
  assert.match(jwsAlgorithm('PS256')?.unfit(sha384.publicKey) ?? '', /restricted to sha384/);
  assert.equal(jwsAlgorithm('PS384')?.unfit(sha384.publicKey), undefined);
  // @types/node types saltLength as a string; node:crypto takes the number of bytes.
  const longSaltOptions = { modulusLength: 2048, hashAlgorithm: 'sha256', saltLength: 64 };
  const longSalt = generateKeyPairSync('rsa-pss', longSaltOptions as unknown as { modulusLength: number });
  assert.match(jwsAlgorithm('PS256')?.unfit(longSalt.publicKey) ?? '', /longer salt/);
});

test('an RSA signature without its leading zero byte is refused: one token, one spelling', async () => {
  for (const [alg, options] of [
    ['RS256', { key: rsa.privateKey }],
    ['PS256', { key: rsa.privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }],
  ] as [string, SignKeyObjectInput][]) {
    // A signature whose first byte is zero comes about once in 256 (PSS is randomized; PKCS#1
    // v1.5 is not, so the claims change instead).
    let token = '';
    for (let attempt = 0; attempt < 20_000 && token === ''; attempt++) {
      const candidate = byHand(alg, (input) => sign('sha256', input, options), { ...CLAIMS, n: attempt });
      const signature = Buffer.from(candidate.slice(candidate.lastIndexOf('.') + 1), 'base64url');
      if (signature[0] === 0) token = candidate;
    }
    assert.notEqual(token, '', `a ${alg} signature starting with 0x00`);
    assert.equal(refusal(await check(token, rsa.publicKey)), 'ok', alg);
    const cut = token.lastIndexOf('.') + 1;
    const stripped = `${token.slice(0, cut)}${b64(Buffer.from(token.slice(cut), 'base64url').subarray(1))}`;
    assert.equal(
      refusal(await check(stripped, rsa.publicKey)),
      'signature',
      `${alg} without its leading zero`,
    );
  }
});

test('an empty HMAC secret is no key', () => {
  assert.equal(jwsAlgorithm('HS256')?.unfit(createSecretKey(Buffer.alloc(0))), 'an empty HMAC secret');
  assert.equal(jwsAlgorithm('HS256')?.unfit(secret), undefined);
});

test('a key of another kind or type never checks the token (algorithm confusion)', async () => {
  // HS256 keyed with the RSA public key's PEM, as a confused verifier would check it.
  const pem = rsa.publicKey.export({ format: 'pem', type: 'spki' });
  const confused = byHand('HS256', (input) => createHmac('sha256', pem).update(input).digest());
  assert.equal(refusal(await check(confused, rsa.publicKey)), 'unknown_key');
  assert.equal(refusal(await check(await withJose('RS256', rsa.privateKey), secret)), 'unknown_key');
  assert.equal(
    refusal(await check(await withJose('RS256', rsa.privateKey), pssKey.publicKey)),
    'unknown_key',
  );
  assert.equal(refusal(await check(await withJose('ES256', p256.privateKey), rsa.publicKey)), 'unknown_key');
  const edToken = await withJose('Ed25519', ed25519.privateKey);
  assert.equal(refusal(await check(edToken, ed448.publicKey)), 'unknown_key', 'Ed25519 takes no Ed448 key');
  const ed448Token = byHand('Ed25519', (input) => sign(null, input, ed448.privateKey));
  assert.equal(refusal(await check(ed448Token, ed448.publicKey)), 'unknown_key');
  assert.equal(
    refusal(await check(await withJose('RS256', rsa.privateKey), rsa.privateKey)),
    'unknown_key',
    'a private key object is not taken as a public one',
  );
});

test('an HMAC of another length is a bad signature, never an exception', async () => {
  const valid = await withJose('HS256', secret);
  const input = valid.slice(0, valid.lastIndexOf('.'));
  const mac = createHmac('sha256', secret).update(input).digest();
  for (const signature of [mac.subarray(0, 16), Buffer.concat([mac, mac]), Buffer.alloc(0)]) {
    assert.equal(
      refusal(await check(`${input}.${b64(signature)}`, secret)),
      'signature',
      `${signature.length}`,
    );
  }
  const hs = jwsAlgorithm('HS256');
  assert.equal(hs?.verify(secret, Buffer.from(input), mac.subarray(0, 31)), false);
  assert.equal(hs?.verify(secret, Buffer.from(input), mac), true);
});

test('each algorithm says why a key does not fit, and only for keys that do not', () => {
  assert.equal(jwsAlgorithm('HS256')?.unfit(secret), undefined);
  assert.equal(jwsAlgorithm('HS256')?.unfit(rsa.publicKey), 'a public key cannot verify HS256');
  assert.equal(jwsAlgorithm('RS256')?.unfit(rsa.publicKey), undefined);
  assert.equal(jwsAlgorithm('PS256')?.unfit(pssKey.publicKey), undefined);
  assert.equal(
    jwsAlgorithm('PS512')?.unfit(pssKey.publicKey),
    'an RSA-PSS key restricted to sha256/sha256 cannot verify PS512',
  );
  assert.equal(jwsAlgorithm('ES512')?.unfit(p521.publicKey), undefined);
  assert.equal(jwsAlgorithm('EdDSA')?.unfit(p256.publicKey), 'a key of type ec cannot verify EdDSA');
  assert.equal(jwsAlgorithm('none'), undefined);
  assert.equal(jwsAlgorithm('__proto__'), undefined);
});
