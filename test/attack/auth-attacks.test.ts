/**
 * The token check under attack, as a hostile client would go at it, on real sockets: tokens at and
 * past the header size limit, repeated Authorization headers, `Bearer` spelled oddly, headers and
 * payloads that are huge, deeply nested or not JSON, `crit` and `b64: false`, every `alg` trick
 * (`none` in any case, HS256 keyed with the RSA public key as PEM, DER or JWK, embedded `jwk`,
 * `jku`, `x5u` and `x5c` that must never be used or fetched), a flood of made-up key ids (one JWKS
 * fetch per cool-down at most), a token in several places at once (the first source wins and the
 * query and subprotocol copies never reach the backend), subprotocol, query and cookie tricks,
 * spoofed claim headers in every spelling, plain HTTP requests trying to skip the check, odd
 * `exp`/`nbf`/`sub` types, the per-subject cap raced and reset mid-handshake, and an identity
 * provider that tarpits, floods, or serves garbage or secret keys.
 *
 * Each attack asserts what the gateway must do: the status (401/403/429/503/431/400), the backend
 * never contacted when the request is refused, the process alive, the fetch and the sockets
 * bounded, and no token in any log line. Tests named `regression:` are bugs these attacks found.
 */
import assert from 'node:assert/strict';
import { createHmac, randomBytes, sign } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer } from 'node:http';
import { connect, type Socket } from 'node:net';
import { type TestContext, test } from 'node:test';
import { SignJWT } from 'jose';
import {
  closeServer,
  type EchoBackend,
  listen,
  startEchoBackend,
  startHttpBackend,
  switchingProtocolsHead,
  trackConnections,
} from '../helpers/backends.ts';
import {
  handshakeHeaders,
  handshakeLines,
  openClient,
  type RawResponse,
  rawRequest,
} from '../helpers/clients.ts';
import { eventually, within } from '../helpers/eventually.ts';
import { FakeClock } from '../helpers/fake-clock.ts';
import { startGateway, type TestGateway, testConfig } from '../helpers/gateway.ts';
import { exchange, type ParsedResponse } from '../helpers/raw-http.ts';
import {
  type IdentityProvider,
  nowSeconds,
  rsaKey,
  type SigningKey,
  signToken,
  startIdentityProvider,
} from '../helpers/tokens.ts';

const ISSUER = 'https://idp.test/';
const CLAIMS = { iss: ISSUER, aud: 'chat' };
const POLLING = '/socket.io/?EIO=4&transport=polling';
const KIB = 1024;
const MIB = 1024 * KIB;

const b64 = (data: string | Buffer): string => Buffer.from(data).toString('base64url');

/** A compact JWS with exactly this header and payload text, RS256-signed with `key` (or unsigned). */
function forge(header: unknown, payload: unknown, key?: SigningKey): string {
  const headerText = typeof header === 'string' ? header : JSON.stringify(header);
  const payloadText = typeof payload === 'string' ? payload : JSON.stringify(payload);
  const input = `${b64(headerText)}.${b64(payloadText)}`;
  return `${input}.${key ? sign('sha256', Buffer.from(input), key.privateKey).toString('base64url') : ''}`;
}

/** Claims that would pass, with `extra` over them. */
function claims(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { ...CLAIMS, sub: 'user-1', iat: nowSeconds(), exp: nowSeconds() + 3600, ...extra };
}

/** `[[[...]]]` nested `depth` deep. */
const nested = (depth: number): string => `${'['.repeat(depth)}${']'.repeat(depth)}`;

interface PlainRequest {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingMessage['headers'];
  readonly rawHeaders: string[];
  readonly trailers: NodeJS.Dict<string>;
  readonly body: string;
}

/** A backend that echoes WebSockets (choosing the last subprotocol offered) and records plain requests. */
async function recordingBackend(t: TestContext): Promise<EchoBackend & { requests: PlainRequest[] }> {
  const requests: PlainRequest[] = [];
  const backend = await startEchoBackend(t, {
    ws: { handleProtocols: (protocols) => [...protocols].at(-1) ?? false },
    onRequest: (req: IncomingMessage, res: ServerResponse) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        requests.push({
          method: req.method ?? '',
          url: req.url ?? '',
          headers: req.headers,
          rawHeaders: req.rawHeaders,
          trailers: req.trailers,
          body: Buffer.concat(chunks).toString(),
        });
        res.end('backend');
      });
    },
  });
  return Object.assign(backend, { requests });
}

interface Rig {
  readonly gw: TestGateway;
  readonly backend: EchoBackend & { requests: PlainRequest[] };
  readonly key: SigningKey;
  readonly idp: IdentityProvider;
  /** Signs a token with the IdP's key (remembered: it must never be logged). */
  token(extra?: Record<string, unknown>): Promise<string>;
  /** Remembers tokens made by hand (forged, garbage): none may be logged either. */
  remember(...tokens: string[]): void;
  /** Asserts that no remembered token appears in any log line. */
  noTokenLogged(): void;
}

interface RigOptions {
  readonly auth?: Record<string, unknown>;
  readonly admission?: Record<string, unknown>;
  readonly keySet?: Record<string, unknown>;
  readonly origins?: Record<string, unknown>;
  readonly clock?: FakeClock;
}

async function rig(t: TestContext, options: RigOptions = {}): Promise<Rig> {
  const key = rsaKey('k1');
  const idp = await startIdentityProvider(t, [key]);
  const backend = await recordingBackend(t);
  const gw = await startGateway(
    t,
    {
      log: { query: 'keep' },
      keySets: { idp: { jwksUrl: idp.url, ...options.keySet } },
      auth: {
        keySet: 'idp',
        algorithms: ['RS256'],
        issuer: ISSUER,
        audience: 'chat',
        clockTolerance: '0s',
        tokenFrom: ['authorization', 'subprotocol', 'cookie', 'query'],
        claimHeaders: { sub: 'X-User-Id', scope: 'X-User-Scope' },
        ...options.auth,
      },
      routes: {
        app: { pool: 'app' },
        admin: {
          pool: 'app',
          path: '/admin',
          auth: { requiredClaims: { scope: 'admin', email_verified: true } },
        },
        open: { pool: 'app', path: '/public', auth: { keySet: 'off' } },
      },
      pools: { app: { backends: [backend.url] } },
      ...(options.admission ? { admission: options.admission } : {}),
      ...(options.origins ? { origins: options.origins } : {}),
    },
    options.clock ? { clock: options.clock } : {},
  );
  const tokens: string[] = [];
  const remember = (...more: string[]): void => {
    // Short strings ("a.b.c") could appear in a log line for other reasons.
    for (const token of more) if (token.length >= 24) tokens.push(token);
  };
  return {
    gw,
    backend,
    key,
    idp,
    token: async (extra = {}) => {
      const token = await signToken(key, { ...CLAIMS, ...extra });
      remember(token);
      return token;
    },
    remember,
    noTokenLogged: () => {
      const logged = JSON.stringify(gw.logs);
      for (const token of tokens) {
        assert.ok(!logged.includes(token), `no log line contains the token ${token.slice(0, 40)}…`);
      }
    },
  };
}

/** A WebSocket handshake with `headers` added; the answer's head, the socket closed. */
async function upgrade(gw: TestGateway, headers: Record<string, string>, path = '/ws'): Promise<RawResponse> {
  const response = await rawRequest(gw.port(), { path, headers: { ...handshakeHeaders(), ...headers } });
  response.socket.destroy();
  return response;
}

/** A WebSocket handshake with raw header lines added (repeats allowed); the first response. */
async function upgradeLines(
  gw: TestGateway,
  lines: readonly string[],
  path = '/ws',
): Promise<ParsedResponse> {
  const head = `GET ${path} HTTP/1.1\r\n${handshakeLines()}${lines.map((line) => `${line}\r\n`).join('')}\r\n`;
  const { responses } = await exchange(gw.port(), head, { count: 1, timeoutMs: 5_000 });
  assert.ok(responses[0], 'a response');
  return responses[0];
}

/** Raw bytes of one or more plain requests; the responses. */
async function plain(gw: TestGateway, bytes: string, count = 1, head = false): Promise<ParsedResponse[]> {
  const { responses } = await exchange(gw.port(), bytes, { count, timeoutMs: 5_000, head });
  return [...responses];
}

function bearerOf(token: string): Record<string, string> {
  return { Authorization: `Bearer ${token}` };
}

// ---------------------------------------------------------------------------------------------
// The token's size and shape

test('a token near the 16 KiB header limit is refused (401), one past it gets 431, a large valid one opens', async (t) => {
  const r = await rig(t);
  const garbage = `${b64('{"alg":"RS256","kid":"k1"}')}.${'A'.repeat(15 * KIB)}.${'B'.repeat(300)}`;
  r.remember(garbage);
  const near = await upgrade(r.gw, bearerOf(garbage));
  assert.equal(near.status, 401);
  assert.equal(near.headers['www-authenticate'], 'Bearer error="invalid_token"');
  const past = await upgrade(r.gw, bearerOf('A'.repeat(17 * KIB)));
  assert.equal(past.status, 431);
  assert.equal(r.backend.connections(), 0, 'the backend was never contacted');
  // A real token with a 5 KB claim fits, and its claim header reaches the backend as it is (the
  // backend gets the claim twice, in the token and the header: a larger one would overflow its own limit).
  const big = await r.token({ scope: 'x'.repeat(5_000) });
  const opened = await upgrade(r.gw, bearerOf(big));
  assert.equal(opened.status, 101);
  assert.equal(r.backend.upgrades[0]?.headers['x-user-scope']?.length, 5_000);
  r.noTokenLogged();
});

test('hundreds of Authorization headers: 400 (one is allowed), the backend never contacted', async (t) => {
  const r = await rig(t);
  const lines = Array.from({ length: 400 }, (_, i) => `Authorization: Bearer junk${i}`);
  const response = await upgradeLines(r.gw, lines);
  assert.equal(response.status, 400);
  assert.equal(r.backend.connections(), 0);
  // Plain requests alike: two Authorization headers are refused, whatever Node would keep.
  const good = await r.token();
  const forged = forge({ alg: 'RS256', kid: 'k1' }, claims({ sub: 'admin' }));
  r.remember(forged);
  const [polled] = await plain(
    r.gw,
    `GET ${POLLING} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${good}\r\nAuthorization: Bearer ${forged}\r\n\r\n`,
  );
  assert.equal(polled?.status, 400);
  assert.equal(r.backend.requests.length, 0);
  r.noTokenLogged();
});

test('regression: two Authorization headers: the backend must not get a second, unverified token', async (t) => {
  const r = await rig(t);
  const good = await r.token();
  const forged = forge({ alg: 'RS256', kid: 'k1' }, claims({ sub: 'admin' }));
  r.remember(forged);
  const response = await upgradeLines(r.gw, [
    `Authorization: Bearer ${good}`,
    `Authorization: Bearer ${forged}`,
  ]);
  if (response.status === 101) {
    const seen = r.backend.upgrades[0]?.rawHeaders ?? [];
    const copies = seen.filter((_, i) => i % 2 === 1 && /^authorization$/i.test(seen[i - 1] ?? ''));
    assert.deepEqual(
      copies,
      [`Bearer ${good}`],
      'only the verified Authorization header reaches the backend',
    );
  } else {
    assert.equal(response.status, 400, 'or the request is refused as malformed, like several Host headers');
    assert.equal(r.backend.connections(), 0);
  }
});

test('Bearer with odd case and whitespace: the scheme is case-insensitive, anything else around the token is refused', async (t) => {
  const r = await rig(t);
  const jwt = await r.token();
  for (const value of [
    `bearer ${jwt}`,
    `BEARER ${jwt}`,
    `Bearer \t ${jwt}`,
    `Bearer ${jwt}  `,
    `  Bearer ${jwt}`,
  ]) {
    assert.equal(
      (await upgrade(r.gw, { Authorization: value })).status,
      101,
      JSON.stringify(value.slice(0, 12)),
    );
  }
  const missing = [
    `Bearer${jwt}`,
    'Bearer',
    'Bearer ',
    `Bearer ${jwt} extra`,
    `Bearer ${jwt}, Basic eA==`,
    `Basic ${jwt}`,
    `Token ${jwt}`,
    `Bearer: ${jwt}`,
  ];
  for (const value of missing) {
    const response = await upgrade(r.gw, { Authorization: value });
    assert.equal(response.status, 401, value.slice(0, 20));
    assert.equal(response.headers['www-authenticate'], 'Bearer', `${value.slice(0, 20)}: no token found`);
  }
  const joined = await upgrade(r.gw, { Authorization: `Bearer ${jwt},${jwt}` });
  assert.equal(joined.status, 401);
  assert.equal(joined.headers['www-authenticate'], 'Bearer error="invalid_token"');
  assert.equal(r.backend.upgrades.length, 5, 'only the five well-formed ones reached the backend');
  r.noTokenLogged();
});

test('huge, deeply nested or non-object JSON in the header or payload: 401, the process unharmed', async (t) => {
  const r = await rig(t);
  const deepHeader = `{"alg":"RS256","kid":"k1","x":${nested(5_000)}}`;
  const cases = [
    forge(deepHeader, claims()),
    forge({ alg: 'RS256', kid: 'k1' }, `{"sub":${nested(5_000)}}`),
    forge('[]', claims()),
    forge('"RS256"', claims()),
    forge('null', claims()),
    forge('1e99999', claims()),
    forge('{"alg":"RS256","kid":"k1"', claims()),
    forge('{"__proto__":{"alg":"RS256","kid":"k1"}}', claims()),
    forge('{"alg":"RS256","alg":"none"}', claims()),
    forge({ alg: 'RS256', kid: 'k1' }, '[1,2,3]', r.key),
    forge({ alg: 'RS256', kid: 'k1' }, '"a string"', r.key),
    forge({ alg: 'RS256', kid: 'k1' }, '{"sub":"x",}', r.key),
    forge({ alg: 'RS256', kid: 'k1' }, Buffer.from([0xff, 0xfe, 0x7b, 0x7d]).toString('latin1'), r.key),
  ];
  r.remember(...cases);
  for (const [i, jwt] of cases.entries()) {
    const response = await upgrade(r.gw, bearerOf(jwt));
    assert.equal(response.status, 401, `case ${i}`);
    assert.equal(response.headers['www-authenticate'], 'Bearer error="invalid_token"', `case ${i}`);
  }
  assert.equal(r.backend.connections(), 0);
  // The deep header signed with the real key is a valid token: nothing in it breaks the check.
  const signedDeep = forge(deepHeader, claims(), r.key);
  r.remember(signedDeep);
  assert.equal((await upgrade(r.gw, bearerOf(signedDeep))).status, 101);
  assert.equal(r.backend.upgrades.length, 1);
  // A validly signed token with a claim nested 3000 deep, sent on as a claim header.
  const deep = forge(
    { alg: 'RS256', kid: 'k1' },
    `{"iss":"${ISSUER}","aud":"chat","sub":"d","exp":${nowSeconds() + 600},"scope":${nested(3_000)}}`,
    r.key,
  );
  r.remember(deep);
  const response = await upgrade(r.gw, bearerOf(deep));
  assert.equal(response.status, 101);
  assert.equal(r.backend.upgrades[1]?.headers['x-user-scope'], nested(3_000));
  assert.equal((await upgrade(r.gw, bearerOf(await r.token()))).status, 101, 'the gateway still works');
  r.noTokenLogged();
});

test('regression: a valid token whose claim header value is nested too deep to serialize: refused or sent, never a 500', async (t) => {
  const r = await rig(t);
  const deep = forge(
    { alg: 'RS256', kid: 'k1' },
    `{"iss":"${ISSUER}","aud":"chat","sub":"d","exp":${nowSeconds() + 600},"scope":${nested(5_000)}}`,
    r.key,
  );
  r.remember(deep);
  const response = await upgrade(r.gw, bearerOf(deep));
  assert.ok([101, 401].includes(response.status), `upgrade answered ${response.status}`);
  const [polled] = await plain(
    r.gw,
    `GET ${POLLING} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${deep}\r\n\r\n`,
  );
  assert.ok([200, 401].includes(polled?.status ?? 0), `long-polling answered ${polled?.status}`);
  assert.ok(!r.gw.logs.some((line) => line.level === 'error'), 'no error-level log line');
});

test('crit headers and b64: false, even with a valid signature: 401', async (t) => {
  const r = await rig(t);
  const body = claims();
  const cases = [
    forge(
      { alg: 'RS256', kid: 'k1', crit: ['http://evil.test/ext'], 'http://evil.test/ext': true },
      body,
      r.key,
    ),
    forge({ alg: 'RS256', kid: 'k1', crit: [] }, body, r.key),
    forge({ alg: 'RS256', kid: 'k1', crit: 'b64', b64: false }, body, r.key),
    forge({ alg: 'RS256', kid: 'k1', crit: ['alg'] }, body, r.key),
    forge({ alg: 'RS256', kid: 'k1', crit: ['exp'], exp: 1 }, body, r.key),
  ];
  // b64: false with crit, validly signed: the payload is the raw JSON in the signing input (RFC 7797),
  // and in the token itself (no dot in it) or detached. JWTs must not use it.
  const header = b64(JSON.stringify({ alg: 'RS256', kid: 'k1', b64: false, crit: ['b64'] }));
  const raw = JSON.stringify({ sub: 'root', exp: nowSeconds() + 600 });
  const signature = sign('sha256', Buffer.from(`${header}.${raw}`), r.key.privateKey).toString('base64url');
  cases.push(`${header}.${raw}.${signature}`);
  r.remember(...cases);
  for (const [i, jwt] of cases.entries()) {
    const response = await upgrade(r.gw, bearerOf(jwt));
    assert.equal(response.status, 401, `case ${i}`);
  }
  // The detached form: the signature cannot match the empty payload it is checked against.
  assert.equal((await upgrade(r.gw, bearerOf(`${header}..${signature}`))).status, 401);
  assert.equal(r.backend.connections(), 0);
  assert.equal(await r.gw.metric('wsgate_auth_refusals_total', { reason: 'malformed' }), cases.length);
  r.noTokenLogged();
});

test('base64 garbage, wrong part counts and JWE-shaped tokens: 401, backend untouched', async (t) => {
  const r = await rig(t);
  const header = b64(JSON.stringify({ alg: 'RS256', kid: 'k1' }));
  const payload = b64(JSON.stringify(claims()));
  const cases = [
    '...',
    'a.b.c',
    'eyJ.eyJ.',
    `${header}.${payload}`,
    `${header}.${payload}.sig.extra`,
    `${header}.${payload}.${'!'.repeat(342)}`,
    `${Buffer.from('{"alg":"RS256","kid":"k1"}').toString('base64')}==.${payload}.AAAA`,
    `${header}.${Buffer.from(JSON.stringify(claims())).toString('base64').replaceAll('=', '')}+/.AAAA`,
    `${b64(JSON.stringify({ alg: 'RS256', enc: 'A256GCM', kid: 'k1' }))}.a.b.c.d`,
    `${header}.${payload}.\u00ff\u00fe`,
  ];
  r.remember(...cases);
  for (const jwt of cases) {
    const response = await upgrade(r.gw, bearerOf(jwt));
    assert.equal(response.status, 401, jwt.slice(0, 30));
  }
  assert.equal(r.backend.connections(), 0);
  r.noTokenLogged();
});

// ---------------------------------------------------------------------------------------------
// Algorithms and embedded keys

test('alg tricks: none in any case, HS256 keyed with the RSA public key (PEM, DER, JWK), others: 401 algorithm', async (t) => {
  const r = await rig(t);
  const body = claims({ sub: 'root' });
  const hs256 = (secret: string | Buffer): string => {
    const input = `${b64(JSON.stringify({ alg: 'HS256', kid: 'k1' }))}.${b64(JSON.stringify(body))}`;
    return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
  };
  const pub = r.key.publicKey;
  const cases = [
    ...['none', 'None', 'NONE', 'nOnE', ''].map((alg) => forge({ alg, kid: 'k1' }, body)),
    forge({ kid: 'k1' }, body, r.key),
    forge({ alg: ['RS256'], kid: 'k1' }, body, r.key),
    forge({ alg: 256, kid: 'k1' }, body, r.key),
    forge({ alg: 'rs256', kid: 'k1' }, body, r.key),
    forge({ alg: 'RS256 ', kid: 'k1' }, body, r.key),
    forge({ alg: 'PS256', kid: 'k1' }, body, r.key),
    hs256(pub.export({ format: 'pem', type: 'spki' })),
    hs256(pub.export({ format: 'pem', type: 'pkcs1' })),
    hs256(pub.export({ format: 'der', type: 'spki' })),
    hs256(JSON.stringify(r.key.jwk)),
    hs256(Buffer.from(String(r.key.jwk.n), 'base64url')),
  ];
  r.remember(...cases);
  for (const [i, jwt] of cases.entries()) {
    const response = await upgrade(r.gw, bearerOf(jwt));
    assert.equal(response.status, 401, `case ${i}`);
  }
  assert.equal(await r.gw.metric('wsgate_auth_refusals_total', { reason: 'algorithm' }), cases.length);
  assert.equal(r.backend.connections(), 0);
  // And the configuration cannot be talked into it: HS256 over a public key set is refused at load.
  assert.throws(
    () =>
      testConfig({
        keySets: { idp: { jwksUrl: r.idp.url } },
        auth: { keySet: 'idp', algorithms: ['RS256', 'HS256'] },
        routes: { app: { pool: 'app' } },
        pools: { app: { backends: ['http://127.0.0.1:1'] } },
      }),
    /algorithm confusion/,
  );
  r.noTokenLogged();
});

/** A server that counts every connection it gets: what a token's jku or x5u points at. */
async function sentinel(t: TestContext): Promise<{ url: string; hits: () => number }> {
  const backend = await startHttpBackend(t, (_req, res) => res.end('{"keys":[]}'));
  return { url: `${backend.url}/keys`, hits: backend.connections };
}

test('embedded jwk, jku, x5u and x5c headers are never used or fetched', async (t) => {
  const clock = new FakeClock();
  const r = await rig(t, { clock });
  const attacker = rsaKey('k1');
  const elsewhere = await sentinel(t);
  const body = claims({ sub: 'root' });
  const cases: string[] = [];
  for (const kid of ['k1', undefined, 'attacker-kid']) {
    const base = { alg: 'RS256', ...(kid ? { kid } : {}) };
    cases.push(
      forge({ ...base, jwk: attacker.jwk }, body, attacker),
      forge({ ...base, jku: elsewhere.url }, body, attacker),
      forge({ ...base, x5u: elsewhere.url }, body, attacker),
      forge({ ...base, x5c: [randomBytes(600).toString('base64')] }, body, attacker),
      forge({ ...base, jwk: attacker.jwk, jku: elsewhere.url, x5u: elsewhere.url }, body, attacker),
    );
  }
  r.remember(...cases);
  await eventually(() => r.idp.fetches() === 1, 'the first JWKS fetch');
  clock.advance(60_000); // past the cool-down: an unknown kid may make one fetch, of the configured URL only
  for (const [i, jwt] of cases.entries()) {
    const response = await upgrade(r.gw, bearerOf(jwt));
    assert.equal(response.status, 401, `case ${i}`);
  }
  assert.equal(elsewhere.hits(), 0, 'nothing a token names is ever contacted');
  assert.ok(r.idp.fetches() <= 2, `the configured JWKS at most once more (${r.idp.fetches()})`);
  assert.equal(r.backend.connections(), 0);
  r.noTokenLogged();
});

test('a flood of made-up key ids costs at most one JWKS fetch per cool-down', async (t) => {
  const clock = new FakeClock();
  const r = await rig(t, { clock, keySet: { refreshCooldown: '30s', refreshInterval: '10m' } });
  await eventually(() => r.idp.fetches() === 1, 'the first JWKS fetch');
  const attacker = rsaKey('x');
  const flood = async (count: number): Promise<Set<number>> => {
    const statuses = await Promise.all(
      Array.from({ length: count }, async () => {
        const jwt = forge({ alg: 'RS256', kid: randomBytes(12).toString('hex') }, claims(), attacker);
        return (await upgrade(r.gw, bearerOf(jwt))).status;
      }),
    );
    return new Set(statuses);
  };
  assert.deepEqual(await flood(100), new Set([401]));
  assert.equal(r.idp.fetches(), 1, 'none inside the cool-down that follows the first fetch');
  clock.advance(30_000);
  assert.deepEqual(await flood(100), new Set([401]));
  assert.equal(r.idp.fetches(), 2, 'one for the whole flood');
  clock.advance(10_000);
  assert.deepEqual(await flood(50), new Set([401]));
  assert.equal(r.idp.fetches(), 2, 'none again before the cool-down ends');
  // Huge kids are not kept anywhere, and a valid token still gets in at once.
  const huge = forge({ alg: 'RS256', kid: 'k'.repeat(8 * KIB) }, claims(), attacker);
  assert.equal((await upgrade(r.gw, bearerOf(huge))).status, 401);
  assert.equal((await upgrade(r.gw, bearerOf(await r.token()))).status, 101);
  assert.equal(await r.gw.metric('wsgate_auth_refusals_total', { reason: 'unknown_key' }), 251);
  for (const line of r.gw.logs)
    assert.ok(JSON.stringify(line).length < 4 * KIB, 'no log line carries the huge kid whole');
});

test('regression: long-polling requests with a huge kid do not make huge log lines', async (t) => {
  const r = await rig(t);
  const huge = forge({ alg: 'RS256', kid: 'k'.repeat(8 * KIB) }, claims(), rsaKey('x'));
  const [response] = await plain(
    r.gw,
    `GET ${POLLING} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${huge}\r\n\r\n`,
  );
  assert.equal(response?.status, 401);
  await eventually(() => r.gw.logs.some((line) => line.msg === 'http request'), 'the access line');
  for (const line of r.gw.logs) assert.ok(JSON.stringify(line).length < 4 * KIB, 'every log line is capped');
});

// ---------------------------------------------------------------------------------------------
// Where the token travels

test('a token in several places: the first source wins, no fallback, and the query and subprotocol copies never reach the backend', async (t) => {
  const r = await rig(t);
  const good = await r.token();
  const other = await r.token({ sub: 'user-2' });
  const expired = await r.token({ exp: nowSeconds() - 60 });
  // A bad Authorization token is not rescued by a good one elsewhere.
  const refused = await upgrade(
    r.gw,
    { ...bearerOf(expired), 'Sec-WebSocket-Protocol': `bearer, ${good}`, Cookie: `access_token=${good}` },
    `/ws?access_token=${good}`,
  );
  assert.equal(refused.status, 401);
  assert.equal(r.backend.connections(), 0);
  // A good Authorization token: the others are not used, and those in the query and the subprotocol list are removed.
  const opened = await upgrade(
    r.gw,
    {
      ...bearerOf(good),
      'Sec-WebSocket-Protocol': `bearer, ${other}, chat.v1`,
      Cookie: `access_token=${expired}`,
    },
    `/ws?room=1&access_token=${other}&access_token=${expired}`,
  );
  assert.equal(opened.status, 101);
  const seen = r.backend.upgrades[0];
  assert.equal(seen?.headers['x-user-id'], 'user-1', 'the Authorization token is the one used');
  assert.equal(seen?.url, '/ws?room=1');
  assert.equal(seen?.headers['sec-websocket-protocol'], 'chat.v1');
  assert.ok(
    !seen?.rawHeaders.join('\n').includes(other),
    'the other token is nowhere in what the backend got',
  );
  // The subprotocol token wins over the query one, which is still removed.
  const second = await upgrade(
    r.gw,
    { 'Sec-WebSocket-Protocol': `bearer, ${other}` },
    `/ws?access_token=${expired}`,
  );
  assert.equal(second.status, 101);
  assert.equal(r.backend.upgrades[1]?.headers['x-user-id'], 'user-2');
  assert.equal(r.backend.upgrades[1]?.url, '/ws');
  assert.equal(r.backend.upgrades[1]?.headers['sec-websocket-protocol'], undefined);
  // Plain HTTP: the query copy is removed too.
  const [polled] = await plain(
    r.gw,
    `GET ${POLLING}&access_token=${other} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${good}\r\n\r\n`,
  );
  assert.equal(polled?.status, 200);
  assert.equal(r.backend.requests[0]?.url, POLLING);
  r.noTokenLogged();
});

test('subprotocol marker tricks: bare, last, other case, commas, split headers', async (t) => {
  const r = await rig(t);
  const jwt = await r.token();
  for (const offered of ['bearer', 'chat, bearer', `Bearer, ${jwt}`, `BEARER, ${jwt}`, 'bearer, , ']) {
    const response = await upgrade(r.gw, { 'Sec-WebSocket-Protocol': offered });
    assert.equal(response.status, 401, offered.slice(0, 20));
    assert.equal(response.headers['www-authenticate'], 'Bearer', `${offered.slice(0, 20)}: no token found`);
  }
  const commas = await upgrade(r.gw, { 'Sec-WebSocket-Protocol': `bearer, a,b, ${jwt}` });
  assert.equal(commas.status, 401, 'the entry after the marker is the token, whatever follows');
  assert.equal(r.backend.connections(), 0);
  // Split over two header lines, with odd spacing: one list, the marker and token taken out.
  const split = await upgradeLines(r.gw, [
    'Sec-WebSocket-Protocol:   bearer  ',
    `Sec-WebSocket-Protocol: ${jwt} ,chat.v1`,
  ]);
  assert.equal(split.status, 101);
  assert.equal(r.backend.upgrades[0]?.headers['sec-websocket-protocol'], 'chat.v1');
  assert.equal(split.headers['sec-websocket-protocol'], 'chat.v1');
  r.noTokenLogged();
});

test('the marker offered twice: every [marker, token] pair is taken out, so no token reaches the backend or the log', async (t) => {
  const r = await rig(t);
  const first = await r.token();
  const second = await r.token({ sub: 'user-2' });
  // The backend chooses the last subprotocol offered: were the second token left in, it would
  // choose it and the 101 and the access line would carry it.
  const response = await upgrade(r.gw, {
    'Sec-WebSocket-Protocol': `bearer, ${first}, bearer, ${second}, chat.v1`,
  });
  assert.equal(response.status, 101);
  assert.equal(r.backend.upgrades[0]?.headers['x-user-id'], 'user-1', 'the first token is the one used');
  assert.equal(r.backend.upgrades[0]?.headers['sec-websocket-protocol'], 'chat.v1');
  assert.equal(response.headers['sec-websocket-protocol'], 'chat.v1');
  const only = await upgrade(r.gw, { 'Sec-WebSocket-Protocol': `bearer, ${first}, bearer, ${second}` });
  assert.equal(only.status, 101);
  assert.equal(r.backend.upgrades[1]?.headers['sec-websocket-protocol'], undefined);
  assert.equal(only.headers['sec-websocket-protocol'], 'bearer');
  r.noTokenLogged();
});

test('regression: a plain request with a subprotocol token: the copy must not reach the backend', async (t) => {
  const r = await rig(t);
  const good = await r.token();
  const other = await r.token({ sub: 'user-2' });
  const [response] = await plain(
    r.gw,
    `GET ${POLLING} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${good}\r\nSec-WebSocket-Protocol: bearer, ${other}\r\n\r\n`,
  );
  assert.equal(response?.status, 200);
  assert.ok(!JSON.stringify(r.backend.requests[0]?.rawHeaders).includes(other));
});

test('query tricks: repeats, encoded names, empty values, bare names, fragments', async (t) => {
  const r = await rig(t);
  const good = await r.token();
  const bad = await r.token({ aud: 'billing' });
  const cases: [string, number, string | undefined][] = [
    [`/ws?access_token=${good}&access_token=${bad}`, 101, '/ws'],
    [`/ws?access_token=${bad}&access_token=${good}`, 401, undefined],
    [`/ws?x=1&access%5Ftoken=${good}&y=2`, 101, '/ws?x=1&y=2'],
    [`/ws?access%5ftoken=${good}`, 101, '/ws'],
    [`/ws?access_token&access_token=${good}`, 101, '/ws'],
    [`/ws?access_token=&x=1`, 401, undefined],
    [`/ws?Access_Token=${good}`, 401, undefined],
    [`/ws?access_token+=${good}`, 401, undefined],
    [`/ws?access_token=${good}%`, 401, undefined],
    [`/ws;access_token=${good}`, 401, undefined],
  ];
  for (const [path, status, target] of cases) {
    const before = r.backend.upgrades.length;
    const response = await upgrade(r.gw, {}, path);
    assert.equal(response.status, status, path.slice(0, 40));
    if (target !== undefined) assert.equal(r.backend.upgrades[before]?.url, target, path.slice(0, 40));
    else assert.equal(r.backend.upgrades.length, before, `${path.slice(0, 40)}: not sent on`);
  }
  const fragment = await upgrade(r.gw, {}, `/ws?x=1#access_token=${good}`);
  assert.equal(fragment.status, 400);
  // Long-polling: the encoded spelling is used and removed too, and a refused one is redacted from
  // the access line (log.query is keep here).
  const [polled, refused] = await plain(
    r.gw,
    `GET ${POLLING}&access%5Ftoken=${good} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n` +
      `GET ${POLLING}&access%5Ftoken=${bad} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`,
    2,
  );
  assert.equal(polled?.status, 200);
  assert.equal(refused?.status, 401);
  assert.equal(r.backend.requests[0]?.url, POLLING);
  await eventually(
    () => r.gw.logs.filter((line) => line.msg === 'http request').length === 2,
    'both access lines',
  );
  r.noTokenLogged();
});

test('cookie tricks: quoted, repeated, split, other case', async (t) => {
  const r = await rig(t);
  const good = await r.token();
  const bad = await r.token({ iss: 'https://evil.test/' });
  const cases: [string[], number][] = [
    [[`Cookie: access_token="${good}"`], 101],
    [[`Cookie: a=1; access_token=${good}; b=2`], 101],
    [['Cookie: a=1', `Cookie: access_token=${good}`], 101],
    // The same cookie twice with different values: backends differ on which one they read.
    [[`Cookie: access_token=${good}; access_token=${bad}`], 401],
    [[`Cookie: access_token=${good}; access_token=${good}`], 101],
    [[`Cookie: access_token=${bad}; access_token=${good}`], 401],
    [[`Cookie: access_token="${good}`], 401],
    [['Cookie: access_token=""'], 401],
    [[`Cookie: ACCESS_TOKEN=${good}`], 401],
    [[`Cookie: xaccess_token=${good}`], 401],
  ];
  for (const [lines, status] of cases) {
    const response = await upgradeLines(r.gw, lines);
    assert.equal(response.status, status, lines.join(' | ').slice(0, 60));
  }
  assert.equal(r.backend.upgrades.length, 4);
  r.noTokenLogged();
});

// ---------------------------------------------------------------------------------------------
// Claim headers

test('spoofed claim headers in every spelling never reach the backend, on upgrades and plain requests', async (t) => {
  const r = await rig(t);
  const jwt = await r.token(); // no scope claim: X-User-Scope must not be sent at all
  const spoofs = [
    'X-User-Id: admin',
    'x-user-id: admin',
    'X-USER-ID: admin',
    'X_User_Id: admin',
    'x_user-id: admin',
    'X-User-Scope: everything',
    'X_USER_SCOPE: everything',
    'Connection: X-User-Id',
  ];
  const response = await upgradeLines(r.gw, [`Authorization: Bearer ${jwt}`, ...spoofs]);
  assert.equal(response.status, 101);
  const seen = r.backend.upgrades[0];
  const named = (raw: readonly string[], pattern: RegExp): string[] =>
    raw.filter((_, i) => i % 2 === 1 && pattern.test(raw[i - 1] ?? ''));
  assert.deepEqual(named(seen?.rawHeaders ?? [], /^x[-_]user[-_]id$/i), ['user-1']);
  assert.deepEqual(named(seen?.rawHeaders ?? [], /^x[-_]user[-_]scope$/i), []);
  // The same on a long-polling POST, with a chunked body and the spoof in a trailer too.
  const [polled] = await plain(
    r.gw,
    `POST ${POLLING} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${jwt}\r\n${spoofs.join('\r\n')}\r\n` +
      'Transfer-Encoding: chunked\r\nTrailer: X-User-Id\r\n\r\n5\r\nhello\r\n0\r\nX-User-Id: admin\r\n\r\n',
  );
  assert.equal(polled?.status, 200);
  const request = r.backend.requests[0];
  assert.equal(request?.body, 'hello');
  assert.deepEqual(named(request?.rawHeaders ?? [], /^x[-_]user[-_]id$/i), ['user-1']);
  assert.deepEqual(named(request?.rawHeaders ?? [], /^x[-_]user[-_]scope$/i), []);
  assert.equal(request?.trailers['x-user-id'], undefined, 'nor in a trailer');
  r.noTokenLogged();
});

test('a claim value with CR LF or non-ASCII cannot inject a header', async (t) => {
  const r = await rig(t);
  const jwt = await r.token({ sub: 'eve\r\nX-Admin: 1', scope: 'é ö \u0000' });
  assert.equal((await upgrade(r.gw, bearerOf(jwt))).status, 101);
  const seen = r.backend.upgrades[0];
  assert.equal(seen?.headers['x-admin'], undefined);
  assert.equal(seen?.headers['x-user-id'], encodeURIComponent('eve\r\nX-Admin: 1'));
  assert.equal(seen?.headers['x-user-scope'], encodeURIComponent('é ö \u0000'));
});

test('regression: a route with auth off must not pass spoofed claim headers to the backend the token routes share', async (t) => {
  const r = await rig(t);
  const response = await upgrade(r.gw, { 'X-User-Id': 'admin' }, '/public/ws');
  assert.equal(response.status, 101);
  assert.equal(r.backend.upgrades[0]?.headers['x-user-id'], undefined);
});

// ---------------------------------------------------------------------------------------------
// Plain HTTP trying to get around the check

test('plain HTTP cannot skip the check: POST, HEAD, OPTIONS, chunked, Expect, odd methods, h2c, keep-alive reuse', async (t) => {
  const r = await rig(t);
  const host = 'Host: 127.0.0.1\r\n';
  const attempts: [string, boolean][] = [
    [`POST ${POLLING} HTTP/1.1\r\n${host}Content-Length: 5\r\n\r\nhello`, false],
    [`HEAD ${POLLING} HTTP/1.1\r\n${host}\r\n`, true],
    [
      `OPTIONS ${POLLING} HTTP/1.1\r\n${host}Origin: http://a.test\r\nAccess-Control-Request-Method: POST\r\n\r\n`,
      false,
    ],
    [`OPTIONS * HTTP/1.1\r\n${host}\r\n`, false],
    [`PUT ${POLLING} HTTP/1.1\r\n${host}Transfer-Encoding: chunked\r\n\r\n5\r\nhel`, false], // body never finished
    [`POST ${POLLING} HTTP/1.1\r\n${host}Expect: 100-continue\r\nContent-Length: 5\r\n\r\n`, false],
    [`PROPFIND ${POLLING} HTTP/1.1\r\n${host}\r\n`, false],
    [`GET ${POLLING} HTTP/1.0\r\n\r\n`, false],
    [
      `GET ${POLLING} HTTP/1.1\r\n${host}Connection: Upgrade\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n`,
      false,
    ],
    [`GET /ws HTTP/1.1\r\n${host}Upgrade: websocket\r\n\r\n`, false],
  ];
  for (const [bytes, isHead] of attempts) {
    const { responses, closedByPeer } = await exchange(r.gw.port(), bytes, {
      count: 1,
      timeoutMs: 5_000,
      head: isHead,
    });
    const status = responses[0]?.status;
    assert.ok(
      status === undefined ? closedByPeer : status >= 400,
      `${bytes.split('\r\n')[0]}: refused (${status})`,
    );
    assert.notEqual(status, 101);
  }
  // CONNECT is not a request the gateway serves.
  const tunnel = await exchange(r.gw.port(), `CONNECT 127.0.0.1:${r.backend.port} HTTP/1.1\r\n${host}\r\n`, {
    count: 1,
    timeoutMs: 5_000,
  });
  assert.ok(tunnel.responses[0] === undefined || tunnel.responses[0].status >= 400);
  assert.equal(r.backend.connections(), 0, 'the backend was never contacted');
  // A keep-alive connection that carried a good token does not let the next request in without one.
  const jwt = await r.token();
  const [first, second] = await plain(
    r.gw,
    `GET ${POLLING}&access_token=${jwt} HTTP/1.1\r\n${host}\r\nGET ${POLLING} HTTP/1.1\r\n${host}\r\n`,
    2,
  );
  assert.equal(first?.status, 200);
  assert.equal(second?.status, 401);
  assert.equal(r.backend.requests.length, 1);
  r.noTokenLogged();
});

// ---------------------------------------------------------------------------------------------
// Claim types

test('exp, nbf and iat of odd types or values', async (t) => {
  const r = await rig(t);
  const now = nowSeconds();
  const accepted = [{ exp: 32_503_680_000 }, { exp: 1.7e308 }, { exp: now + 60.5 }];
  const refused: [Record<string, unknown>, string][] = [
    [{ exp: -1 }, 'expired'],
    [{ exp: 0 }, 'expired'],
    [{ exp: String(now + 3600) }, 'malformed'],
    [{ exp: null }, 'malformed'],
    [{ exp: [now + 3600] }, 'malformed'],
    [{ exp: { $gt: 0 } }, 'malformed'],
    [{ exp: true }, 'malformed'],
    [{ nbf: String(now - 10) }, 'malformed'],
    [{ nbf: 1.7e308 }, 'not_yet_valid'],
    [{ iat: 'yesterday' }, 'malformed'],
  ];
  const sockets: Socket[] = [];
  for (const extra of accepted) {
    const response = await rawRequest(r.gw.port(), {
      path: '/ws',
      headers: { ...handshakeHeaders(), ...bearerOf(await r.token(extra)) },
    });
    assert.equal(response.status, 101, JSON.stringify(extra));
    sockets.push(response.socket);
  }
  for (const [extra] of refused) {
    const jwt = forge({ alg: 'RS256', kid: 'k1' }, claims(extra), r.key);
    r.remember(jwt);
    const response = await upgrade(r.gw, bearerOf(jwt));
    assert.equal(response.status, 401, JSON.stringify(extra));
  }
  // (A non-numeric nbf is counted as not_yet_valid, not malformed: every nbf failure is.)
  for (const reason of ['expired', 'not_yet_valid']) {
    const expected = refused.filter(([, name]) => name === reason).length;
    assert.ok((await r.gw.metric('wsgate_auth_refusals_total', { reason })) >= expected, reason);
  }
  assert.equal(await r.gw.metric('wsgate_auth_refusals_total'), refused.length);
  // The far-future tokens hold a live tunnel like any other; they close normally.
  assert.equal(r.gw.gateway.registry.tunnelCount, 3);
  for (const socket of sockets) socket.destroy();
  await eventually(() => r.gw.gateway.registry.tunnelCount === 0, 'the tunnels to close');
  r.noTokenLogged();
});

test('iss, aud and required claims of odd types or near-miss values', async (t) => {
  const r = await rig(t);
  const iss: [Record<string, unknown>, number][] = [
    [{ iss: [ISSUER] }, 401],
    [{ iss: `${ISSUER} ` }, 401],
    [{ iss: ISSUER.toUpperCase() }, 401],
    [{ aud: { 0: 'chat' } }, 401],
    [{ aud: 'chat billing' }, 401],
    [{ aud: ['billing', 'chat'] }, 101],
    [{ aud: [] }, 401],
  ];
  for (const [extra, status] of iss) {
    const jwt = forge({ alg: 'RS256', kid: 'k1' }, claims(extra), r.key);
    r.remember(jwt);
    assert.equal((await upgrade(r.gw, bearerOf(jwt))).status, status, JSON.stringify(extra));
  }
  // The admin route asks for scope "admin" and email_verified: true.
  const scopes: [Record<string, unknown>, number][] = [
    [{ scope: 'read admin', email_verified: true }, 101],
    [{ scope: ['admin'], email_verified: true }, 101],
    [{ scope: 'administrator', email_verified: true }, 403],
    [{ scope: 'read,admin', email_verified: true }, 403],
    [{ scope: 'ADMIN', email_verified: true }, 403],
    [{ scope: { admin: true }, email_verified: true }, 403],
    [{ scope: [['admin']], email_verified: true }, 403],
    [{ scope: 'admin', email_verified: 'true' }, 403],
    [{ scope: 'admin', email_verified: [true] }, 101],
    [{ scope: 'admin', email_verified: 1 }, 403],
    [{ scope: 'admin' }, 403],
  ];
  for (const [extra, status] of scopes) {
    const response = await upgrade(r.gw, bearerOf(await r.token(extra)), '/admin/ws');
    assert.equal(response.status, status, JSON.stringify(extra));
    if (status === 403)
      assert.equal(response.headers['www-authenticate'], 'Bearer error="insufficient_scope"');
  }
  assert.equal(r.backend.upgrades.length, 4, 'only the four that pass reached the backend');
  r.noTokenLogged();
});

test('cookie tokens and cross-site pages: the Origin check runs first, for upgrades and long-polling', async (t) => {
  const r = await rig(t, { origins: { allow: ['https://app.test'] } });
  const jwt = await r.token();
  const evil = [
    'https://evil.test',
    'https://app.test.evil.test',
    'http://app.test',
    'null',
    'https://app.test:444',
  ];
  for (const origin of evil) {
    const response = await upgrade(r.gw, { Origin: origin, Cookie: `access_token=${jwt}` });
    assert.equal(response.status, 403, origin);
    const [polled] = await plain(
      r.gw,
      `GET ${POLLING} HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: ${origin}\r\nCookie: access_token=${jwt}\r\n\r\n`,
    );
    assert.equal(polled?.status, 403, `${origin} (long-polling)`);
  }
  assert.equal(r.backend.connections(), 0);
  assert.equal(await r.gw.metric('wsgate_auth_refusals_total'), 0, 'refused before the token was looked at');
  const allowed = await upgrade(r.gw, { Origin: 'https://app.test', Cookie: `access_token=${jwt}` });
  assert.equal(allowed.status, 101);
  r.noTokenLogged();
});

// ---------------------------------------------------------------------------------------------
// The per-subject cap

/** Opens `count` upgrades at once; the sockets of those that opened stay open (closed at the end of the test). */
async function race(t: TestContext, gw: TestGateway, jwt: string, count: number): Promise<RawResponse[]> {
  const responses = await Promise.all(
    Array.from({ length: count }, () =>
      rawRequest(gw.port(), { path: '/ws', headers: { ...handshakeHeaders(), ...bearerOf(jwt) } }),
    ),
  );
  t.after(() => {
    for (const response of responses) response.socket.destroy();
  });
  for (const response of responses) if (response.status !== 101) response.socket.destroy();
  return responses;
}

const statusesOf = (responses: readonly RawResponse[]): number[] =>
  responses.map((response) => response.status);

test('per-subject cap: concurrent upgrades racing never exceed it, and slots come back', async (t) => {
  const r = await rig(t, { admission: { perSubject: { maxConnections: 2 } } });
  const jwt = await r.token({ sub: 'racer', scope: 'admin', email_verified: true });
  const raced = await race(t, r.gw, jwt, 40);
  const statuses = statusesOf(raced);
  assert.equal(statuses.filter((status) => status === 101).length, 2, 'exactly the cap');
  assert.equal(statuses.filter((status) => status === 429).length, 38);
  assert.equal(r.backend.upgrades.length, 2, 'the refused never reached the backend');
  // The cap holds across routes; another subject is not affected.
  const other = await upgrade(r.gw, bearerOf(jwt), '/admin/ws');
  assert.equal(other.status, 429);
  assert.equal(other.headers['retry-after'], '1');
  assert.equal((await upgrade(r.gw, bearerOf(await r.token({ sub: 'other' })))).status, 101);
  assert.equal(await r.gw.metric('wsgate_upgrades_total', { code: 'SUBJECT_CONNECTIONS_EXCEEDED' }), 39);
  // Once the two close, the subject may open two again.
  for (const response of raced) response.socket.destroy();
  await eventually(() => r.gw.gateway.registry.tunnelCount === 0, 'the tunnels to end');
  assert.deepEqual(statusesOf(await race(t, r.gw, jwt, 3)).sort(), [101, 101, 429]);
});

test('per-subject cap: a client reset while the backend has not answered gives its slot back', async (t) => {
  const held: { closed: boolean }[] = [];
  let answer: 'hold' | 'refuse' | 'accept' = 'hold';
  const backend = await startHttpBackend(
    t,
    (_req, res) => res.end(),
    (req, socket) => {
      if (answer === 'accept') {
        socket.write(switchingProtocolsHead(req));
        return;
      }
      if (answer === 'refuse') {
        socket.end('HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n');
        return;
      }
      const entry = { closed: false };
      held.push(entry);
      // The backend's server sockets allow half-open: the gateway's FIN shows as 'end'.
      socket.resume();
      const closed = (): void => {
        entry.closed = true;
      };
      socket.once('end', closed);
      socket.once('close', closed);
    },
  );
  const key = rsaKey('k1');
  const idp = await startIdentityProvider(t, [key]);
  const gw = await startGateway(t, {
    keySets: { idp: { jwksUrl: idp.url } },
    auth: { keySet: 'idp', algorithms: ['RS256'] },
    admission: { perSubject: { maxConnections: 1 } },
    routes: { app: { pool: 'app' } },
    pools: { app: { backends: [backend.url], handshakeTimeout: '30s' } },
  });
  const jwt = await signToken(key, { sub: 'u' });
  const client = connect(gw.port(), '127.0.0.1');
  client.on('error', () => {});
  client.write(`GET /ws HTTP/1.1\r\n${handshakeLines()}Authorization: Bearer ${jwt}\r\n\r\n`);
  await eventually(() => held.length === 1, 'the upgrade to reach the backend');
  // Meanwhile the slot is taken.
  assert.equal((await upgrade(gw, bearerOf(jwt))).status, 429);
  client.resetAndDestroy();
  await eventually(() => gw.gateway.registry.pendingCount === 0, 'the handshake to be abandoned');
  await eventually(() => held[0]?.closed === true, 'the backend attempt to be dropped');
  // A handshake the backend refuses gives its slot back too.
  answer = 'refuse';
  assert.equal((await upgrade(gw, bearerOf(jwt))).status, 403, "the backend's own refusal, relayed");
  await eventually(() => gw.gateway.registry.pendingCount === 0, 'the refusal to be relayed');
  answer = 'accept';
  assert.equal((await upgrade(gw, bearerOf(jwt))).status, 101, 'the slot is free again');
});

test('per-subject cap: a client reset while its token waits for the JWKS gives its slot back', async (t) => {
  let release: () => void = () => {};
  const released = new Promise<void>((resolve) => {
    release = resolve;
  });
  const key = rsaKey('k1');
  const idp = await fakeIdp(t, async (_req, res) => {
    await released;
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [key.jwk] }));
  });
  const backend = await startEchoBackend(t);
  const gw = await startGateway(t, {
    keySets: { idp: { jwksUrl: idp.url, fetchTimeout: '20s' } },
    auth: { keySet: 'idp', algorithms: ['RS256'] },
    admission: { perSubject: { maxConnections: 1 } },
    routes: { app: { pool: 'app' } },
    pools: { app: { backends: [backend.url] } },
  });
  const jwt = await signToken(key, { sub: 'u' });
  const clients = Array.from({ length: 5 }, () => {
    const client = connect(gw.port(), '127.0.0.1');
    client.on('error', () => {});
    client.write(`GET /ws HTTP/1.1\r\n${handshakeLines()}Authorization: Bearer ${jwt}\r\n\r\n`);
    return client;
  });
  await eventually(() => gw.gateway.registry.pendingCount === 5, 'the handshakes to wait for the keys');
  for (const client of clients) client.resetAndDestroy();
  release();
  await eventually(() => gw.gateway.registry.pendingCount === 0, 'the handshakes to end');
  assert.equal(backend.connections(), 0, 'none of the gone clients reached the backend');
  await eventually(async () => (await upgrade(gw, bearerOf(jwt))).status === 101, 'the slot to be free');
});

test('regression: per-subject cap: a numeric or object sub must be counted like a string one', async (t) => {
  const r = await rig(t, { admission: { perSubject: { maxConnections: 1 } } });
  for (const sub of [42, { id: 42 }]) {
    const jwt = forge({ alg: 'RS256', kid: 'k1' }, claims({ sub }), r.key);
    r.remember(jwt);
    const statuses = statusesOf(await race(t, r.gw, jwt, 5));
    assert.ok(
      statuses.filter((status) => status === 101).length <= 1,
      `sub ${JSON.stringify(sub)}: ${statuses.join(',')}`,
    );
  }
});

// ---------------------------------------------------------------------------------------------
// A hostile or broken identity provider

interface FakeIdp {
  readonly url: string;
  readonly hits: () => number;
  /** Bytes the handler managed to write. */
  written: number;
  readonly sockets: Set<Socket>;
}

/** A JWKS endpoint whose answer the test writes. */
async function fakeIdp(
  t: TestContext,
  handle: (req: IncomingMessage, res: ServerResponse, idp: FakeIdp) => unknown,
): Promise<FakeIdp> {
  let hits = 0;
  const server = createServer((req, res) => {
    hits++;
    void handle(req, res, idp);
  });
  const { sockets } = trackConnections(server);
  const port = await listen(server);
  t.after(() => closeServer(server, sockets));
  const idp: FakeIdp = {
    url: `http://127.0.0.1:${port}/jwks.json`,
    hits: () => hits,
    written: 0,
    sockets,
  };
  return idp;
}

async function gatewayWith(
  t: TestContext,
  url: string,
  keySet: Record<string, unknown> = {},
  clock?: FakeClock,
) {
  const backend = await startEchoBackend(t);
  const gw = await startGateway(
    t,
    {
      keySets: { idp: { jwksUrl: url, fetchTimeout: '1s', ...keySet } },
      auth: { keySet: 'idp', algorithms: ['RS256'] },
      routes: { app: { pool: 'app' } },
      pools: { app: { backends: [backend.url] } },
    },
    clock ? { clock } : {},
  );
  return { gw, backend };
}

/** Writes `total` bytes of `chunk`s, following backpressure, until done or the socket closes. */
function pump(res: ServerResponse, idp: FakeIdp, total: number, first: string): void {
  const block = Buffer.alloc(64 * KIB, 0x20);
  res.write(first);
  const more = (): void => {
    while (idp.written < total && !res.destroyed) {
      idp.written += block.length;
      if (!res.write(block)) {
        res.once('drain', more);
        return;
      }
    }
    if (!res.destroyed) res.end(']}');
  };
  res.on('close', () => res.off('drain', more));
  more();
}

test('a tarpit JWKS (headers, then a byte now and then) cannot hold requests past fetchTimeout', async (t) => {
  const key = rsaKey('k1');
  const timers = new Set<NodeJS.Timeout>();
  t.after(() => {
    for (const timer of timers) clearInterval(timer);
  });
  const idp = await fakeIdp(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.write('{"keys":[');
    const timer = setInterval(() => res.write(' '), 100);
    timers.add(timer);
    res.on('close', () => clearInterval(timer));
  });
  const started = performance.now();
  const { gw, backend } = await gatewayWith(t, idp.url);
  const jwt = await signToken(key);
  const statuses = await within(
    Promise.all(Array.from({ length: 10 }, async () => (await upgrade(gw, bearerOf(jwt))).status)),
    'every request answered despite the tarpit',
    4_000,
  );
  assert.deepEqual(new Set(statuses), new Set([503]));
  assert.ok(performance.now() - started < 3_500, 'answered within about fetchTimeout');
  assert.equal(idp.hits(), 1, 'the waiting requests shared one fetch');
  assert.equal(backend.connections(), 0);
  await eventually(() => idp.sockets.size === 0, 'the gateway to drop the tarpit connection');
});

test('a JWKS endpoint that never answers: 503 within fetchTimeout, its socket dropped', async (t) => {
  const idp = await fakeIdp(t, () => {});
  const { gw } = await gatewayWith(t, idp.url);
  const response = await within(upgrade(gw, bearerOf(await signToken(rsaKey('k1')))), 'an answer', 4_000);
  assert.equal(response.status, 503);
  assert.equal(response.headers['retry-after'], '1');
  await eventually(() => idp.sockets.size === 0, 'the gateway to drop the silent connection');
});

test('a tarpit refresh after keys were known: known kids answered at once, an unknown kid waits at most fetchTimeout', async (t) => {
  const clock = new FakeClock();
  const key = rsaKey('k1');
  let tarpit = false;
  const idp = await fakeIdp(t, (_req, res) => {
    if (!tarpit) {
      res.writeHead(200).end(JSON.stringify({ keys: [key.jwk] }));
      return;
    }
    res.writeHead(200);
    res.write('{');
  });
  const { gw } = await gatewayWith(t, idp.url, { refreshCooldown: '1s' }, clock);
  assert.equal((await upgrade(gw, bearerOf(await signToken(key)))).status, 101);
  tarpit = true;
  clock.advance(1_000);
  const unknown = upgrade(gw, bearerOf(await signToken(rsaKey('k2'))));
  await eventually(() => idp.hits() === 2, 'the refresh for the unknown kid');
  const known = await within(upgrade(gw, bearerOf(await signToken(key))), 'the known kid at once', 500);
  assert.equal(known.status, 101);
  assert.equal((await within(unknown, 'the unknown kid within fetchTimeout', 3_000)).status, 401);
  assert.equal((await upgrade(gw, bearerOf(await signToken(key)))).status, 101, 'the last keys stay in use');
});

test('a 50 MiB JWKS, declared or streamed, is cut at the 1 MiB cap', async (t) => {
  for (const declared of [true, false]) {
    const idp = await fakeIdp(t, (_req, res, self) => {
      res.writeHead(200, declared ? { 'content-length': String(50 * MIB) } : {});
      pump(res, self, 50 * MIB, '{"keys":[');
    });
    const { gw } = await gatewayWith(t, idp.url, { fetchTimeout: '10s' });
    const response = await within(upgrade(gw, bearerOf(await signToken(rsaKey('k1')))), 'an answer', 8_000);
    assert.equal(response.status, 503, declared ? 'declared' : 'streamed');
    await eventually(() => idp.sockets.size === 0, 'the gateway to drop the connection');
    assert.ok(
      idp.written < 16 * MIB,
      `${declared ? 'declared' : 'streamed'}: read ${idp.written} bytes at most`,
    );
    assert.ok(
      gw.logs.some(
        (line) =>
          line.msg === 'JWKS fetch failed; no keys yet, tokens are refused' && /over/.test(String(line.err)),
      ),
      'the reason is logged',
    );
  }
});

test('JWKS documents that are not JSON, not a key set, or hold only secret keys: no token is accepted', async (t) => {
  const secret = randomBytes(32);
  const key = rsaKey('k1');
  const octKey = { kty: 'oct', k: secret.toString('base64url'), kid: 'k1', alg: 'HS256' };
  const documents = [
    'not json',
    '{"keys":',
    'null',
    '[]',
    '{"keys":"everything"}',
    '{"keys":[1,"a",null]}',
    JSON.stringify({ keys: [octKey] }),
    JSON.stringify({ keys: [{ ...key.jwk, use: 'enc' }] }),
    JSON.stringify({ keys: [{ ...key.jwk, key_ops: ['encrypt'] }] }),
    `{"keys":${nested(100_000)}}`,
  ];
  for (const document of documents) {
    const idp = await fakeIdp(t, (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' }).end(document);
    });
    const { gw, backend } = await gatewayWith(t, idp.url);
    const hmac = await new SignJWT({ sub: 'root', exp: nowSeconds() + 600 })
      .setProtectedHeader({ alg: 'HS256', kid: 'k1' })
      .sign(secret);
    for (const jwt of [await signToken(key), hmac]) {
      const response = await upgrade(gw, bearerOf(jwt));
      assert.ok([401, 503].includes(response.status), `${document.slice(0, 30)}: ${response.status}`);
    }
    assert.equal(backend.connections(), 0, document.slice(0, 30));
  }
});

test('a JWKS with a secret key beside the public one: the secret is never usable', async (t) => {
  const secret = randomBytes(32);
  const key = rsaKey('k1');
  const idp = await fakeIdp(t, (_req, res) => {
    res
      .writeHead(200)
      .end(JSON.stringify({ keys: [{ kty: 'oct', k: secret.toString('base64url'), kid: 'k2' }, key.jwk] }));
  });
  const { gw, backend } = await gatewayWith(t, idp.url);
  assert.equal((await upgrade(gw, bearerOf(await signToken(key)))).status, 101, 'the public key works');
  for (const alg of ['HS256', 'HS384']) {
    for (const kid of ['k2', 'k1']) {
      const jwt = await new SignJWT({ sub: 'root', exp: nowSeconds() + 600 })
        .setProtectedHeader({ alg, kid })
        .sign(secret);
      assert.equal((await upgrade(gw, bearerOf(jwt))).status, 401, `${alg} ${kid}`);
    }
  }
  // The secret dressed up as RS256 with the oct key's kid: no RSA key has that kid.
  const dressed = forge({ alg: 'RS256', kid: 'k2' }, claims(), rsaKey('k2'));
  assert.equal((await upgrade(gw, bearerOf(dressed))).status, 401);
  assert.equal(backend.upgrades.length, 1);
});

test('a JWKS endpoint that redirects is not followed', async (t) => {
  const key = rsaKey('k1');
  const target = await fakeIdp(t, (_req, res) => res.writeHead(200).end(JSON.stringify({ keys: [key.jwk] })));
  const idp = await fakeIdp(t, (_req, res) => res.writeHead(302, { location: target.url }).end());
  const { gw } = await gatewayWith(t, idp.url);
  assert.equal((await upgrade(gw, bearerOf(await signToken(key)))).status, 503);
  assert.equal(target.hits(), 0, 'the redirect target was never fetched');
});

test('a live session: an echo works through a token-bound tunnel opened with a far-future exp', async (t) => {
  const r = await rig(t);
  const ws = await openClient(r.gw.wsUrl('/ws'), ['bearer', await r.token({ exp: 32_503_680_000 }), 'chat']);
  assert.equal(ws.protocol, 'chat');
  const echoed = new Promise<string>((resolve) => ws.once('message', (data) => resolve(String(data))));
  ws.send('ping');
  assert.equal(await within(echoed, 'the echo'), 'ping');
  ws.close();
  r.noTokenLogged();
});
