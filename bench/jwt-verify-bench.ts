/**
 * What checking a token costs the gateway on its own: CPU time per verification of one JWT by
 * the token check (src/auth/verify-token.ts: header, key lookup by kid, signature, claims), with
 * the keys already in memory (a JWKS fetched, a secret loaded), for HS256, RS256 (2048-bit) and
 * ES256, rounds interleaved. The figure to add to a handshake's cost when a route asks for tokens.
 *
 *   node_modules/.bin/node bench/jwt-verify-bench.ts [--rounds 3] [--count 5000]
 *
 * Prints a Markdown table and writes bench/results/jwt-verify-latest.md.
 */
import { createSecretKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { SignJWT } from 'jose';
import type { KeyLookup, KeySet } from '../src/auth/key-lookup.ts';
import { type TokenRules, verifyToken } from '../src/auth/verify-token.ts';

const { values } = parseArgs({
  options: { rounds: { type: 'string', default: '3' }, count: { type: 'string', default: '5000' } },
});
const ROUNDS = Number(values.rounds);
const COUNT = Number(values.count);

const RULES: TokenRules = {
  algorithms: ['HS256', 'RS256', 'ES256'],
  issuer: ['https://idp.example.com/'],
  audience: ['chat'],
  clockToleranceMs: 30_000,
  requireExpiry: true,
  requiredClaims: [['scope', ['chat:write']]],
};

function keySet(kind: KeySet['kind'], key: KeyObject): KeySet {
  const lookup: KeyLookup = { keys: [key] };
  return { kind, lookup: () => lookup, start: () => {}, stop: () => {} };
}

interface Case {
  readonly name: string;
  readonly token: string;
  readonly keys: KeySet;
}

async function cases(): Promise<Case[]> {
  const claims = {
    iss: 'https://idp.example.com/',
    aud: 'chat',
    sub: 'user-1',
    scope: 'chat:read chat:write',
    exp: Math.floor(Date.now() / 1000) + 3600,
  };
  // A secret key set holds its secret as a key object (src/auth/key-set.ts).
  const secret = createSecretKey(Buffer.from('a-benchmark-secret-of-32-bytes!!'));
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const sign = (alg: string, key: KeyObject) =>
    new SignJWT(claims).setProtectedHeader({ alg, kid: 'k1' }).sign(key);
  return [
    { name: 'HS256', token: await sign('HS256', secret), keys: keySet('secret', secret) },
    {
      name: 'RS256 (2048)',
      token: await sign('RS256', rsa.privateKey),
      keys: keySet('public', rsa.publicKey),
    },
    { name: 'ES256', token: await sign('ES256', ec.privateKey), keys: keySet('public', ec.publicKey) },
  ];
}

/** CPU microseconds per verification, over `COUNT` verifications (1,000 warm-up first). */
async function measure(one: Case): Promise<number> {
  const run = async (count: number) => {
    for (let i = 0; i < count; i++) {
      const verdict = await verifyToken(one.token, one.keys, RULES, Date.now());
      if (!verdict.ok) throw new Error(`${one.name}: ${verdict.refusal} ${verdict.detail}`);
    }
  };
  await run(1_000);
  const before = process.cpuUsage();
  await run(COUNT);
  const used = process.cpuUsage(before);
  return (used.user + used.system) / COUNT;
}

const all = await cases();
const samples = new Map<string, number[]>(all.map((one) => [one.name, []]));
for (let round = 0; round < ROUNDS; round++) {
  for (const one of all) samples.get(one.name)?.push(await measure(one));
}
const median = (list: number[]): number => [...list].sort((a, b) => a - b)[Math.floor(list.length / 2)] ?? 0;
const lines = [
  `# Token check cost (${new Date().toISOString().slice(0, 10)}, Node ${process.versions.node}, ${ROUNDS} rounds of ${COUNT})`,
  '',
  '| algorithm | CPU µs per verification (median) | rounds |',
  '| --- | ---: | --- |',
  ...all.map((one) => {
    const list = samples.get(one.name) ?? [];
    return `| ${one.name} | ${median(list).toFixed(1)} | ${list.map((value) => value.toFixed(1)).join(', ')} |`;
  }),
];
const report = `${lines.join('\n')}\n`;
process.stdout.write(report);
const out = join(dirname(fileURLToPath(import.meta.url)), 'results', 'jwt-verify-latest.md');
mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, report);
