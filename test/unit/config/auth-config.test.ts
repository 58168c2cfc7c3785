/**
 * The token settings as the loader reads them: key sets from a JWKS URL, files, an environment
 * variable or a file, each problem reported at its file, line and field; the algorithm rules that
 * keep algorithm confusion out (HS* only with secrets); secrets long enough for their hash; and the
 * per-route overrides resolved field by field into each route's policy.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ConfigError } from '../../../src/config/config-error.ts';
import { parseConfigText } from '../../../src/config/load.ts';
import { resolvePolicies } from '../../../src/policy/route-policy.ts';

const DIR = mkdtempSync(join(tmpdir(), 'wsgate-auth-config-'));
after(() => rmSync(DIR, { recursive: true, force: true }));
writeFileSync(join(DIR, 'short.secret'), 'too-short\n');
writeFileSync(join(DIR, 'long.secret'), `${'s'.repeat(40)}\n`);
writeFileSync(join(DIR, 'garbage.pem'), 'not a key');

const BASE = `listeners:
  public:
    port: 8080
routes:
  echo:
    pool: echo
pools:
  echo:
    backends: [http://127.0.0.1:9001]
`;

function load(text: string, env: Record<string, string> = {}, base = BASE) {
  return parseConfigText(`${base}${text}`, { file: 'c.yaml', baseDir: DIR, env });
}

function problemsOf(text: string, env: Record<string, string> = {}): string {
  try {
    load(text, env);
  } catch (error) {
    if (error instanceof ConfigError) return error.format();
    throw error;
  }
  assert.fail('expected a ConfigError');
}

describe('key sets', () => {
  it('reads a JWKS URL with its defaults, a secret from a variable and from a file', () => {
    const config = load(
      'keySets:\n  idp:\n    jwksUrl: https://idp.example.com/jwks.json\n  env:\n    secretEnv: JWT_SECRET\n  file:\n    secretFile: long.secret\n',
      { JWT_SECRET: 'x'.repeat(32) },
    );
    assert.deepEqual(config.keySets.idp, {
      kind: 'jwks',
      url: 'https://idp.example.com/jwks.json',
      fetchTimeout: 5_000,
      refreshInterval: 600_000,
      refreshCooldown: 30_000,
    });
    assert.equal(config.keySets.env?.kind, 'secret');
    const file = config.keySets.file;
    assert.equal(file?.kind === 'secret' && file.secret.toString(), 's'.repeat(40), 'without its newline');
  });

  it('reports each problem at its line', () => {
    assert.equal(
      problemsOf(
        [
          'keySets:',
          '  none: {}',
          '  two:',
          '    jwksUrl: https://idp.example.com/jwks.json',
          '    secretFile: long.secret',
          '  stray:',
          '    files: [garbage.pem]',
          '    refreshCooldown: 1s',
          '  short:',
          '    secretFile: short.secret',
          '  unset:',
          '    secretEnv: NOT_SET',
          '  ftp:',
          '    jwksUrl: ftp://idp.example.com/jwks.json',
          '',
        ].join('\n'),
      ),
      [
        'c.yaml:11:3 keySets.none: a key set needs one of jwksUrl, files, secretEnv or secretFile',
        'c.yaml:12:3 keySets.two: a key set has one source, not jwksUrl and secretFile',
        `c.yaml:16:13 keySets.stray.files[0]: ${join(DIR, 'garbage.pem')}: not a PEM public key, a certificate, a JWK or a JWKS`,
        `c.yaml:19:17 keySets.short.secretFile: ${join(DIR, 'short.secret')} holds 9 bytes; an HMAC secret needs at least 32`,
        'c.yaml:21:16 keySets.unset.secretEnv: environment variable NOT_SET is not set',
        'c.yaml:23:14 keySets.ftp.jwksUrl: must be an http:// or https:// URL',
      ].join('\n'),
    );
    assert.equal(
      problemsOf('keySets:\n  stray:\n    secretFile: long.secret\n    refreshCooldown: 1s\n'),
      'c.yaml:13:22 keySets.stray.refreshCooldown: applies only with jwksUrl',
    );
  });
});

describe('auth', () => {
  const keySets =
    'keySets:\n  idp:\n    jwksUrl: https://idp.example.com/jwks.json\n  shared:\n    secretFile: long.secret\n';

  it('refuses an unknown key set, no algorithms, and algorithms that do not fit the key set', () => {
    assert.equal(
      problemsOf(`${keySets}auth:\n  keySet: nope\n`),
      'c.yaml:16:11 auth.keySet: no key set named "nope" (keySets: idp, shared)',
    );
    assert.equal(
      problemsOf(`${keySets}auth:\n  keySet: idp\n`),
      'c.yaml:15:1 auth.algorithms: list the algorithms tokens may be signed with (e.g. [RS256])',
    );
    assert.match(
      problemsOf(`${keySets}auth:\n  keySet: idp\n  algorithms: [RS256, HS256]\n`),
      /auth\.algorithms: HS256 needs a secret; key set "idp" holds public keys \(this would allow algorithm confusion\)/,
    );
    assert.match(
      problemsOf(`${keySets}auth:\n  keySet: shared\n  algorithms: [HS512]\n`),
      /auth\.algorithms: HS512 needs a secret of at least 64 bytes; key set "shared" holds 40/,
    );
    assert.match(
      problemsOf(`${keySets}auth:\n  keySet: idp\n  algorithms: [none]\n`),
      /auth\.algorithms\[0\]: must be one of: RS256/,
    );
    assert.match(
      problemsOf(`${keySets}auth:\n  keySet: idp\n  algorithms: [RS256]\n  expiry:\n    code: 1000\n`),
      /auth\.expiry\.code: must be 1008 or 4000-4999/,
    );
    assert.match(
      problemsOf(
        `${keySets}auth:\n  keySet: idp\n  algorithms: [RS256]\n  claimHeaders:\n    sub: X-Forwarded-User\n`,
      ),
      /auth\.claimHeaders\.sub: is a header the gateway itself controls/,
    );
  });

  it("resolves each route's policy: its own fields over the defaults, off where it says so", () => {
    const config = load(
      `${keySets}auth:\n  keySet: idp\n  algorithms: [RS256]\n  audience: chat\n  requiredClaims:\n    scope: [read, write]\n`.concat(
        'routes:\n  echo:\n    pool: echo\n    auth:\n      audience: [chat, admin]\n      expiry:\n        grace: 30s\n  open:\n    pool: echo\n    path: /open\n    auth:\n      keySet: "off"\n',
      ),
      {},
      BASE.replace('routes:\n  echo:\n    pool: echo\n', ''),
    );
    const policies = resolvePolicies(config);
    const echo = policies.get('echo')?.auth;
    assert.deepEqual(echo?.audience, ['chat', 'admin']);
    assert.deepEqual(echo?.requiredClaims, [['scope', ['read', 'write']]]);
    assert.deepEqual(echo?.expiry, { graceMs: 30_000, code: 1008 });
    assert.deepEqual(echo?.tokenFrom, ['authorization', 'subprotocol']);
    assert.equal(policies.get('open')?.auth, undefined);
  });
});
