/**
 * The token check around the signature: compact serialization in strict base64url only, a header
 * and a claims set that are JSON objects, the algorithm allowlist before any key lookup, no `crit`
 * or `b64`, the candidate keys (another one tried only after a bad signature), the standard claims
 * with the clock tolerance in jose's order (checked against jose itself on a grid of claims), and
 * no crafted token that throws or is accepted after any one character changed.
 */
import assert from 'node:assert/strict';
import { createHmac, createSecretKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { test } from 'node:test';
import { errors, FlattenedSign, jwtVerify, SignJWT } from 'jose';
import type { KeyLookup, KeySet } from '../../../src/auth/key-lookup.ts';
import {
  MAX_TOKEN_LENGTH,
  type TokenRules,
  type TokenVerdict,
  verifyToken,
} from '../../../src/auth/verify-token.ts';

const NOW_MS = 1_700_000_000_900; // .9 s past a second: `now` is the second, floored
const NOW = 1_700_000_000;

const RULES: TokenRules = {
  algorithms: ['HS256', 'RS256'],
  issuer: undefined,
  audience: undefined,
  clockToleranceMs: 30_000,
  requireExpiry: false,
  requiredClaims: [],
};

const secret = createSecretKey(Buffer.from('s'.repeat(32)));
const wrongSecret = createSecretKey(Buffer.from('w'.repeat(32)));

function keySet(lookup: KeyLookup | (() => Promise<KeyLookup>), seen: unknown[] = []): KeySet {
  return {
    kind: 'secret',
    lookup(kid, alg) {
      seen.push([kid, alg]);
      return typeof lookup === 'function' ? lookup() : lookup;
    },
    start() {},
    stop() {},
  };
}

const SECRET_SET = keySet({ keys: [secret] });

function check(
  token: string,
  rules: Partial<TokenRules> = {},
  keys: KeySet = SECRET_SET,
): Promise<TokenVerdict> {
  return verifyToken(token, keys, { ...RULES, ...rules }, NOW_MS);
}

const refusal = (verdict: TokenVerdict): string => (verdict.ok ? 'ok' : verdict.refusal);

const b64 = (value: string | Buffer): string => Buffer.from(value).toString('base64url');

/** An HS256 token made by hand: header and payload as given (objects as JSON, strings as they are). */
function hs256(header: unknown, payload: unknown, key: KeyObject = secret): string {
  const part = (value: unknown) =>
    Buffer.isBuffer(value) ? b64(value) : b64(typeof value === 'string' ? value : JSON.stringify(value));
  const input = `${part(header)}.${part(payload)}`;
  return `${input}.${createHmac('sha256', key).update(input).digest('base64url')}`;
}

const signed = (claims: Record<string, unknown>, header: Record<string, unknown> = {}): Promise<string> =>
  new SignJWT(claims).setProtectedHeader({ alg: 'HS256', ...header }).sign(secret);

test('a valid token passes, with its claims, subject key and expiry', async () => {
  const verdict = await check(await signed({ iss: 'idp', sub: 'u1', exp: NOW + 60, role: 'x' }));
  assert.ok(verdict.ok);
  assert.equal(verdict.token.claims.role, 'x');
  assert.equal(verdict.token.subjectKey, 'idp\u0000u1');
  assert.equal(verdict.token.expiresAtMs, (NOW + 60) * 1000);
});

test('an iss that cannot be written as text is malformed, never an exception', async () => {
  const hostile = { toString: 1, valueOf: 1 };
  assert.equal(refusal(await check(hs256({ alg: 'HS256' }, { iss: hostile, sub: 'u1' }))), 'malformed');
  const nested = `{"sub":"u1","iss":${'['.repeat(20_000)}${']'.repeat(20_000)}}`;
  assert.equal(refusal(await check(hs256({ alg: 'HS256' }, nested))), 'malformed');
  assert.equal(
    refusal(await check(hs256({ alg: 'HS256' }, { iss: hostile }))),
    'ok',
    'no sub: no subject key',
  );
  const issued = await check(hs256({ alg: 'HS256' }, { iss: 5, sub: 'u1' }));
  assert.equal(issued.ok ? issued.token.subjectKey : '', '5\u0000u1', 'as before: the value as text');
});

test('a changed payload, or a signature by another key, is a bad signature', async () => {
  const token = await signed({ sub: 'u1' });
  const [header, , signature] = token.split('.');
  assert.equal(
    refusal(await check(`${header}.${b64(JSON.stringify({ sub: 'root' }))}.${signature}`)),
    'signature',
  );
  const forged = await new SignJWT({ sub: 'u1' }).setProtectedHeader({ alg: 'HS256' }).sign(wrongSecret);
  const verdict = await check(forged);
  assert.equal(refusal(verdict), 'signature');
  assert.equal(
    verdict.ok ? '' : verdict.detail,
    'ERR_JWS_SIGNATURE_VERIFICATION_FAILED: signature verification failed',
  );
});

test('only the allowed algorithms, checked before any key is looked up; never none', async () => {
  const seen: unknown[] = [];
  const keys = keySet({ keys: [secret] }, seen);
  assert.equal(refusal(await check(await signed({}), { algorithms: ['RS256'] }, keys)), 'algorithm');
  const none = `${b64(JSON.stringify({ alg: 'none' }))}.${b64('{}')}.`;
  assert.equal(refusal(await check(none, {}, keys)), 'algorithm');
  assert.equal(
    refusal(await check(none, { algorithms: ['none', 'HS256'] }, keys)),
    'algorithm',
    'even listed',
  );
  assert.equal(
    refusal(await check(hs256({ alg: 7 }, {}), { algorithms: ['HS256', '7'] }, keys)),
    'algorithm',
  );
  assert.equal(refusal(await check(hs256({}, {}), { algorithms: ['HS256', ''] }, keys)), 'algorithm');
  assert.deepEqual(seen, [], 'no key set was asked');
  assert.equal(refusal(await check(await signed({}, { kid: 'k1' }), {}, keys)), 'ok');
  assert.equal(refusal(await check(hs256({ alg: 'HS256', kid: 5 }, {}), {}, keys)), 'ok');
  assert.deepEqual(
    seen,
    [
      ['k1', 'HS256'],
      [undefined, 'HS256'],
    ],
    'a kid that is not a string is no kid',
  );
});

test('a header with crit or b64 is malformed: no extension is understood', async () => {
  assert.equal(refusal(await check(hs256({ alg: 'HS256' }, {}))), 'ok');
  assert.equal(refusal(await check(hs256({ alg: 'HS256', crit: ['x'], x: 1 }, {}))), 'malformed');
  assert.equal(refusal(await check(hs256({ alg: 'HS256', crit: ['exp'], exp: 1 }, {}))), 'malformed');
  assert.equal(refusal(await check(hs256({ alg: 'HS256', b64: false }, {}))), 'malformed', 'b64 alone');
  assert.equal(refusal(await check(hs256({ alg: 'HS256', b64: true }, {}))), 'malformed');
  // An unencoded payload that happens to be base64url text, so that only the header refuses it.
  const unencoded = await new FlattenedSign(new TextEncoder().encode('e30'))
    .setProtectedHeader({ alg: 'HS256', b64: false, crit: ['b64'] })
    .sign(secret);
  // jose leaves a Uint8Array payload out (detached); in compact form it is the text itself.
  const compact = `${unencoded.protected}.e30.${unencoded.signature}`;
  assert.equal(refusal(await check(compact)), 'malformed', "jose's b64: false token");
  assert.equal(
    refusal(await check(`${unencoded.protected}..${unencoded.signature}`)),
    'signature',
    'detached',
  );
  // Refused before the signature when jose did (an extension it did not know, a crit of another
  // shape); a forged token with only b64 (jose's one extension) is a bad signature, as with jose.
  const forged = (header: Record<string, unknown>) => hs256(header, {}, wrongSecret);
  assert.equal(refusal(await check(forged({ alg: 'HS256', crit: ['x'], x: 1 }))), 'malformed');
  assert.equal(refusal(await check(forged({ alg: 'HS256', crit: [] }))), 'malformed');
  assert.equal(refusal(await check(forged({ alg: 'HS256', crit: 'b64', b64: false }))), 'malformed');
  assert.equal(refusal(await check(forged({ alg: 'HS256', crit: ['b64'] }))), 'malformed', 'b64 missing');
  assert.equal(refusal(await check(forged({ alg: 'HS256', crit: ['b64'], b64: false }))), 'signature');
  assert.equal(refusal(await check(forged({ alg: 'HS256', b64: false }))), 'signature');
  assert.equal(refusal(await check(hs256({ alg: 'HS256', crit: ['b64'], b64: true }, {}))), 'malformed');
});

test('only three parts of strict base64url: no padding, no other characters, canonical', async () => {
  const token = await signed({ sub: 'u1' });
  const [header = '', payload = '', signature = ''] = token.split('.');
  assert.equal(signature.length % 4, 3, 'an HS256 signature is 43 characters');
  const last = signature.at(-1) ?? '';
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  // The same bytes with bits set past the last one: a lenient decoder reads them alike.
  const sameBytes = alphabet[alphabet.indexOf(last) ^ 1] ?? '';
  const cases = [
    'not.a.jwt',
    `${header}.${payload}`,
    `${token}.x`,
    `${token}.x.y`,
    `.${payload}.${signature}`,
    `${token}=`,
    `${header}.${payload}.${signature.slice(0, -1)}${sameBytes}`,
    `${header}.${payload}.${signature}AA`,
    `${header}.${payload}.${signature.slice(0, 10)}\n${signature.slice(10)}`,
    `${header}.${payload}.${signature.slice(0, 10)} ${signature.slice(10)}`,
    ` ${token}`,
    `${header}.${payload}x.${signature}`,
    '',
  ];
  for (const bad of cases) assert.equal(refusal(await check(bad)), 'malformed', JSON.stringify(bad));
  // An empty payload is checked: another token's signature fails, its own leaves no claims set.
  assert.equal(refusal(await check(`${header}..${signature}`)), 'signature');
  assert.equal(refusal(await check(hs256({ alg: 'HS256' }, ''))), 'malformed');
  // '+' and '/' are base64, not base64url: Node's decoder would take them for '-' and '_'.
  let url = token;
  for (let jti = 0; !/[-_]/.test(url.split('.')[2] ?? ''); jti++) url = await signed({ sub: 'u1', jti });
  assert.equal(refusal(await check(url)), 'ok');
  const [h, p, s = ''] = url.split('.');
  assert.equal(refusal(await check(`${h}.${p}.${s.replaceAll('-', '+').replaceAll('_', '/')}`)), 'malformed');
});

test('header and claims set must be JSON objects, in UTF-8', async () => {
  for (const payload of [
    '[]',
    '[{"sub":"u1"}]',
    '42',
    '"text"',
    'null',
    'true',
    '{',
    Buffer.from([0x7b, 0xff, 0x7d]),
  ]) {
    assert.equal(refusal(await check(hs256({ alg: 'HS256' }, payload))), 'malformed', String(payload));
  }
  for (const header of [
    '["HS256"]',
    '"HS256"',
    'null',
    '{"alg":"HS256"',
    Buffer.from('{"alg":"HS256\xff"}', 'latin1'),
  ]) {
    assert.equal(refusal(await check(hs256(header, {}))), 'malformed', String(header));
  }
  assert.equal(refusal(await check(hs256({ alg: 'HS256' }, { sub: 7 }))), 'malformed', 'sub not a string');
});

test('a token longer than the cap is malformed, before any work', async () => {
  const long = await signed({ pad: 'x'.repeat(MAX_TOKEN_LENGTH) });
  const verdict = await check(long);
  assert.equal(refusal(verdict), 'malformed');
  assert.match(verdict.ok ? '' : verdict.detail, /over 65536/);
  assert.equal(refusal(await check(await signed({ pad: 'x'.repeat(MAX_TOKEN_LENGTH / 2) }))), 'ok');
});

test('exp and nbf with the clock tolerance; NumericDates must be numbers', async () => {
  const cases: [Record<string, unknown>, string][] = [
    [{ exp: NOW - 31 }, 'expired'],
    [{ exp: NOW - 30 }, 'expired'], // jose: exp <= now - tolerance
    [{ exp: NOW - 29 }, 'ok'],
    [{ exp: NOW - 29.5 }, 'ok'],
    [{ nbf: NOW + 31 }, 'not_yet_valid'],
    [{ nbf: NOW + 30 }, 'ok'],
    [{ exp: `${NOW + 60}` }, 'malformed'],
    [{ exp: null }, 'malformed'],
    [{ nbf: '0' }, 'malformed'],
    [{ iat: 'yesterday' }, 'malformed'],
    [{ iat: NOW + 3600 }, 'ok'], // iat in the future is not checked (no maxTokenAge)
    [{ nbf: NOW + 600, exp: NOW - 600 }, 'not_yet_valid'], // nbf before exp, as jose
    [{ nbf: 'x', exp: NOW - 600 }, 'malformed'],
  ];
  for (const [claims, expected] of cases) {
    assert.equal(refusal(await check(await signed(claims))), expected, JSON.stringify(claims));
  }
  const verdict = await check(await signed({ exp: NOW - 600 }));
  assert.match(verdict.ok ? '' : verdict.detail, /^ERR_JWT_EXPIRED: /);
  assert.equal(refusal(await check(await signed({ exp: NOW - 5 }), { clockToleranceMs: 0 })), 'expired');
  assert.equal(refusal(await check(await signed({ exp: NOW + 1 }), { clockToleranceMs: 0 })), 'ok');
});

test('iss and aud when asked for; exp when required', async () => {
  const rules = { issuer: ['https://idp/', 'https://idp2/'], audience: ['chat', 'api'] };
  const cases: [Record<string, unknown>, string][] = [
    [{ iss: 'https://idp2/', aud: 'chat' }, 'ok'],
    [{ iss: 'https://evil/', aud: 'chat' }, 'issuer'],
    [{ iss: ['https://idp/'], aud: 'chat' }, 'issuer'],
    [{ aud: 'chat' }, 'issuer'],
    [{ iss: 'https://idp/', aud: 'billing' }, 'audience'],
    [{ iss: 'https://idp/', aud: ['billing', 'api'] }, 'ok'],
    [{ iss: 'https://idp/', aud: ['billing', 7] }, 'audience'],
    [{ iss: 'https://idp/', aud: [] }, 'audience'],
    [{ iss: 'https://idp/', aud: 5 }, 'audience'],
    [{ iss: 'https://idp/' }, 'audience'],
  ];
  for (const [claims, expected] of cases) {
    assert.equal(refusal(await check(await signed(claims), rules)), expected, JSON.stringify(claims));
  }
  assert.equal(refusal(await check(await signed({}), { requireExpiry: true })), 'no_expiry');
  assert.equal(refusal(await check(await signed({ exp: NOW + 60 }), { requireExpiry: true })), 'ok');
  assert.equal(refusal(await check(await signed({}), { requireExpiry: false })), 'ok');
  assert.equal(
    refusal(await check(await signed({}), { ...rules, requireExpiry: true })),
    'issuer',
    'iss first',
  );
  assert.equal(
    refusal(await check(await signed({ iss: 'https://idp/' }), { requireExpiry: true, ...rules })),
    'audience',
  );
  const late = await signed({ iss: 'x', aud: 'chat', exp: NOW - 600 });
  assert.equal(refusal(await check(late, rules)), 'issuer', 'before exp');
});

test('the route claims: equal, or contained in an array or a space-separated string', async () => {
  const requiredClaims: TokenRules['requiredClaims'] = [
    ['scope', ['chat:write']],
    ['roles', ['member']],
  ];
  const pass = await signed({ scope: 'chat:read chat:write', roles: ['member', 'x'] });
  assert.equal(refusal(await check(pass, { requiredClaims })), 'ok');
  assert.equal(
    refusal(await check(await signed({ scope: 'chat:read', roles: 'member' }), { requiredClaims })),
    'claims',
  );
});

test('candidate keys: another one is tried after a bad signature only', async () => {
  const token = await signed({ sub: 'u1' }, { kid: 'k1' });
  assert.equal(refusal(await check(token, {}, keySet({ keys: [wrongSecret, secret] }))), 'ok');
  assert.equal(refusal(await check(token, {}, keySet({ keys: [wrongSecret, wrongSecret] }))), 'signature');
  const expired = await signed({ exp: NOW - 600 }, { kid: 'k1' });
  assert.equal(refusal(await check(expired, {}, keySet({ keys: [secret, wrongSecret] }))), 'expired');
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey;
  assert.equal(
    refusal(await check(token, {}, keySet({ keys: [rsa, secret] }))),
    'ok',
    'an unfit key is skipped',
  );
  assert.equal(refusal(await check(token, {}, keySet({ keys: [rsa] }))), 'unknown_key');
  assert.equal(refusal(await check(token, {}, keySet({ keys: [] }))), 'unknown_key');
  assert.equal(refusal(await check(token, {}, keySet('unavailable'))), 'keys_unavailable');
  const later = keySet(async () => ({ keys: [wrongSecret, secret] }));
  assert.equal(refusal(await check(token, {}, later)), 'ok', 'a lookup that answers later');
  assert.equal(
    refusal(
      await check(
        token,
        {},
        keySet(async () => 'unavailable'),
      ),
    ),
    'keys_unavailable',
  );
});

/** The refusal jose's jwtVerify gave, as verify-token.ts named jose's errors before. */
async function joseRefusal(token: string, rules: TokenRules): Promise<string> {
  try {
    await jwtVerify(token, secret, {
      algorithms: [...rules.algorithms],
      clockTolerance: rules.clockToleranceMs / 1000,
      currentDate: new Date(NOW_MS),
      requiredClaims: rules.requireExpiry ? ['exp'] : [],
      ...(rules.issuer === undefined ? {} : { issuer: [...rules.issuer] }),
      ...(rules.audience === undefined ? {} : { audience: [...rules.audience] }),
    });
    return 'ok';
  } catch (error) {
    if (error instanceof errors.JWTExpired) return 'expired';
    if (error instanceof errors.JWTClaimValidationFailed) {
      if (error.claim === 'nbf' && error.reason === 'check_failed') return 'not_yet_valid';
      if (error.claim === 'iss') return 'issuer';
      if (error.claim === 'aud') return 'audience';
      if (error.claim === 'exp' && error.reason === 'missing') return 'no_expiry';
    }
    return 'malformed';
  }
}

test('the standard claims are refused as jose refused them, on a grid of claims', async () => {
  const rules: TokenRules = { ...RULES, issuer: ['i'], audience: ['a'], requireExpiry: true };
  const values = {
    iss: [undefined, 'i', 'j', 1],
    aud: [undefined, 'a', ['b', 'a'], ['b'], 2],
    exp: [undefined, NOW - 31, NOW - 30, NOW + 60, 'soon'],
    nbf: [undefined, NOW + 31, NOW + 30, '0'],
    iat: [undefined, NOW, 'now'],
  };
  let compared = 0;
  for (const iss of values.iss)
    for (const aud of values.aud)
      for (const exp of values.exp)
        for (const nbf of values.nbf)
          for (const iat of values.iat) {
            const claims = Object.fromEntries(
              Object.entries({ iss, aud, exp, nbf, iat }).filter(([, value]) => value !== undefined),
            );
            const token = hs256({ alg: 'HS256' }, claims);
            assert.equal(
              refusal(await check(token, rules)),
              await joseRefusal(token, rules),
              JSON.stringify(claims),
            );
            compared++;
          }
  assert.equal(compared, 4 * 5 * 5 * 4 * 3);
});

test('no change of one character makes a valid token pass, and nothing throws', async () => {
  const token = await signed({ sub: 'u1', exp: NOW + 60 }, { kid: 'k1' });
  const characters = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ \u00e9\u0000';
  const refusals = new Set<string>();
  for (let at = 0; at < token.length; at++) {
    for (const character of characters) {
      if (character === token[at]) continue;
      const changed = token.slice(0, at) + character + token.slice(at + 1);
      const verdict = await check(changed);
      assert.equal(verdict.ok, false, changed);
      refusals.add(refusal(verdict));
    }
    assert.equal((await check(token.slice(0, at))).ok, false, `cut at ${at}`);
  }
  // unknown_key: a header changed into another allowed algorithm (RS256), which a secret cannot verify.
  assert.deepEqual([...refusals].sort(), ['algorithm', 'malformed', 'signature', 'unknown_key']);
});
