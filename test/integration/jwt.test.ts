/**
 * The token check on real sockets, with a local identity provider serving a JWKS: a valid token
 * in each of the four places opens the WebSocket (the subprotocol case checks what the backend
 * was offered and what the client got back; the query case, the target the backend got); every
 * bad token gets 401 `invalid_token` (or 403 `insufficient_scope`) with the backend never
 * contacted and the refusal counted by reason; claims reach the backend as headers and a
 * client's copies of them never do; plain HTTP (long-polling) is held to the same check; and no
 * token ever appears in the log.
 */
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { type TestContext, test } from 'node:test';
import { type EchoBackend, startEchoBackend } from '../helpers/backends.ts';
import { handshakeHeaders, openClient, rawRequest } from '../helpers/clients.ts';
import { startGateway, type TestGateway } from '../helpers/gateway.ts';
import {
  confusedToken,
  nowSeconds,
  rsaKey,
  type SigningKey,
  signToken,
  startIdentityProvider,
  unsignedToken,
} from '../helpers/tokens.ts';

const ISSUER = 'https://idp.test/';
const CLAIMS = { iss: ISSUER, aud: 'chat' };

interface Setup {
  readonly gw: TestGateway;
  readonly backend: EchoBackend;
  readonly key: SigningKey;
  /** Every token a test made: none may appear in the log. */
  readonly tokens: string[];
  token(claims?: Record<string, unknown>): Promise<string>;
}

async function setup(t: TestContext): Promise<Setup> {
  const key = rsaKey('k1');
  const idp = await startIdentityProvider(t, [key]);
  const backend = await startEchoBackend(t, {
    ws: { handleProtocols: (protocols) => [...protocols].at(-1) ?? false },
  });
  const gw = await startGateway(t, {
    log: { query: 'keep' },
    keySets: { idp: { jwksUrl: idp.url } },
    auth: {
      keySet: 'idp',
      algorithms: ['RS256'],
      issuer: ISSUER,
      audience: 'chat',
      clockTolerance: '0s',
      tokenFrom: ['authorization', 'subprotocol', 'cookie', 'query'],
      claimHeaders: { sub: 'X-User-Id', scope: 'X-User-Scope' },
    },
    routes: {
      app: { pool: 'app' },
      admin: { pool: 'app', path: '/admin', auth: { requiredClaims: { scope: 'admin' } } },
      open: { pool: 'app', path: '/public', auth: { keySet: 'off' } },
    },
    pools: { app: { backends: [backend.url] } },
  });
  const tokens: string[] = [];
  t.after(() => {
    const logged = JSON.stringify(gw.logs);
    for (const token of tokens) assert.ok(!logged.includes(token), 'no token appears in any log line');
  });
  return {
    gw,
    backend,
    key,
    tokens,
    token: async (claims = {}) => {
      const token = await signToken(key, { ...CLAIMS, ...claims });
      tokens.push(token);
      return token;
    },
  };
}

async function upgrade(gw: TestGateway, headers: Record<string, string>, path = '/ws') {
  const response = await rawRequest(gw.port(), { path, headers: { ...handshakeHeaders(), ...headers } });
  response.socket.destroy();
  return response;
}

test('a token in the Authorization header opens the WebSocket; claims go to the backend as headers, the client copies do not', async (t) => {
  const { gw, backend, token } = await setup(t);
  const ws = await openClient(gw.wsUrl('/ws'), undefined, {
    headers: {
      Authorization: `Bearer ${await token({ scope: 'read write' })}`,
      'X-User-Id': 'admin',
      X_User_Id: 'admin',
      'x-user-scope': 'everything',
    },
  });
  ws.close();
  const seen = backend.upgrades[0];
  assert.equal(seen?.headers['x-user-id'], 'user-1', 'the sub claim, not the client copy');
  assert.equal(seen?.headers['x-user-scope'], 'read write');
  assert.deepEqual(
    seen?.rawHeaders.filter((name) => name.toLowerCase() === 'x-user-id'),
    ['X-User-Id'],
    'one X-User-Id header only',
  );
  assert.equal(
    seen?.headers.x_user_id,
    undefined,
    'nor its underscore spelling (regression: it got through)',
  );
  assert.ok(seen?.headers.authorization?.startsWith('Bearer '), 'Authorization goes on to the backend');
});

test('no token: 401 with WWW-Authenticate: Bearer, the backend never contacted; a route with auth off needs none', async (t) => {
  const { gw, backend } = await setup(t);
  const refused = await upgrade(gw, { 'X-User-Id': 'admin' });
  assert.equal(refused.status, 401);
  assert.equal(refused.headers['www-authenticate'], 'Bearer');
  assert.equal(backend.connections(), 0, 'the backend was never contacted');
  assert.equal(await gw.metric('wsgate_auth_refusals_total', { route: 'app', reason: 'missing' }), 1);
  assert.equal(await gw.metric('wsgate_upgrades_total', { code: 'AUTH_TOKEN_MISSING' }), 1);
  const open = await upgrade(gw, {}, '/public/ws');
  assert.equal(open.status, 101, 'the route with auth off');
});

test('the token in the subprotocol list: the backend chooses among the rest and the client gets its choice', async (t) => {
  const { gw, backend, token } = await setup(t);
  const jwt = await token();
  const ws = await openClient(gw.wsUrl('/ws'), ['bearer', jwt, 'chat.v1', 'chat.v2']);
  assert.equal(ws.protocol, 'chat.v2', "the backend's choice");
  ws.close();
  assert.equal(
    backend.upgrades[0]?.headers['sec-websocket-protocol'],
    'chat.v1, chat.v2',
    'marker and token removed',
  );
  // Offering only the marker and the token: the 101 names the marker (browsers fail a 101 that names none).
  const only = await openClient(gw.wsUrl('/ws'), ['bearer', jwt]);
  assert.equal(only.protocol, 'bearer');
  only.close();
  assert.equal(backend.upgrades[1]?.headers['sec-websocket-protocol'], undefined, 'nothing left to offer');
  // The marker with no token after it.
  const bare = await upgrade(gw, { 'Sec-WebSocket-Protocol': 'bearer' });
  assert.equal(bare.status, 401);
});

test('the token in a query parameter: removed from the target, which otherwise reaches the backend byte for byte', async (t) => {
  const { gw, backend, token } = await setup(t);
  const jwt = await token();
  const ws = await openClient(gw.wsUrl(`/ws?room=a%20b&access_token=${jwt}&x=1&empty=`));
  ws.close();
  assert.equal(backend.upgrades[0]?.url, '/ws?room=a%20b&x=1&empty=');
  const alone = await openClient(gw.wsUrl(`/ws?access_token=${jwt}`));
  alone.close();
  assert.equal(backend.upgrades[1]?.url, '/ws');
  // With log.query: keep, other values are logged, the token's never (checked at teardown too).
  const line = gw.logs.find((record) => typeof record.path === 'string' && record.path.includes('room='));
  assert.equal(line?.path, '/ws?room=a%20b&access_token=[redacted]&x=1&empty=');
});

test('the token in a cookie opens the WebSocket', async (t) => {
  const { gw, token } = await setup(t);
  const response = await upgrade(gw, { Cookie: `theme=dark; access_token=${await token()}` });
  assert.equal(response.status, 101);
});

test('bad tokens get 401 invalid_token, each counted by its reason, none reaching the backend', async (t) => {
  const { gw, backend, key, token, tokens } = await setup(t);
  const now = nowSeconds();
  const other = rsaKey('k1'); // the same kid, another key: a forged signature
  const cases: [string, string][] = [
    ['expired', await token({ exp: now - 10 })],
    ['not_yet_valid', await token({ nbf: now + 600 })],
    ['issuer', await token({ iss: 'https://evil.test/' })],
    ['audience', await token({ aud: 'billing' })],
    ['no_expiry', await token({ exp: undefined })],
    ['signature', await signToken(other, CLAIMS)],
    ['unknown_key', await signToken(rsaKey('k9'), CLAIMS)],
    ['algorithm', unsignedToken({ ...CLAIMS, sub: 'root', exp: now + 600 })],
    ['algorithm', confusedToken(key, { ...CLAIMS, sub: 'root', exp: now + 600 })],
    ['malformed', 'not.a.jwt'],
  ];
  for (const [, jwt] of cases) tokens.push(jwt);
  for (const [reason, jwt] of cases) {
    const response = await upgrade(gw, { Authorization: `Bearer ${jwt}` });
    assert.equal(response.status, 401, reason);
    assert.equal(response.headers['www-authenticate'], 'Bearer error="invalid_token"', reason);
  }
  assert.equal(backend.connections(), 0, 'the backend was never contacted');
  for (const reason of new Set(cases.map(([name]) => name))) {
    const expected = cases.filter(([name]) => name === reason).length;
    assert.equal(await gw.metric('wsgate_auth_refusals_total', { reason }), expected, reason);
  }
  const line = gw.logs.find((record) => record.code === 'AUTH_TOKEN_INVALID');
  assert.match(String(line?.detail), /^expired: ERR_JWT_EXPIRED/, 'the jose error is in the log line');
});

test('a missing required claim is a 403 insufficient_scope; with it the route opens', async (t) => {
  const { gw, backend, token } = await setup(t);
  const refused = await upgrade(
    gw,
    { Authorization: `Bearer ${await token({ scope: 'read' })}` },
    '/admin/ws',
  );
  assert.equal(refused.status, 403);
  assert.equal(refused.headers['www-authenticate'], 'Bearer error="insufficient_scope"');
  assert.equal(backend.connections(), 0);
  assert.equal(await gw.metric('wsgate_auth_refusals_total', { route: 'admin', reason: 'claims' }), 1);
  const allowed = await upgrade(
    gw,
    { Authorization: `Bearer ${await token({ scope: 'read admin' })}` },
    '/admin/ws',
  );
  assert.equal(allowed.status, 101);
});

function get(gw: TestGateway, path: string, headers: Record<string, string> = {}) {
  return new Promise<{ status: number; authenticate: string | undefined }>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: gw.port(), path, headers }, (res) => {
      res.resume();
      resolve({ status: res.statusCode ?? 0, authenticate: res.headers['www-authenticate'] });
    });
    req.on('error', reject);
    req.end();
  });
}

test('plain HTTP long-polling is held to the same check', async (t) => {
  const { gw, backend, token } = await setup(t);
  const polling = '/socket.io/?EIO=4&transport=polling';
  const refused = await get(gw, polling);
  assert.deepEqual(refused, { status: 401, authenticate: 'Bearer' });
  const bad = await get(gw, polling, { Authorization: `Bearer ${await token({ exp: nowSeconds() - 5 })}` });
  assert.deepEqual(bad, { status: 401, authenticate: 'Bearer error="invalid_token"' });
  assert.equal(backend.connections(), 0, 'the backend was never contacted');
  const jwt = await token();
  assert.equal((await get(gw, `${polling}&access_token=${jwt}`)).status, 200);
  assert.equal((await get(gw, polling, { Cookie: `access_token=${jwt}` })).status, 200);
});
