/**
 * Where the keys come from, on real sockets: a JWKS URL fetched at start, fetched again when a
 * token names a key id it does not know (key rotation) but at most once per cool-down, its last
 * good keys kept while the identity provider is down, and no token accepted (503, fail closed)
 * when no key was ever fetched; public keys from PEM and JWK files; an HMAC secret from a file.
 * The gateway's clock is a fake one, so cool-downs and refreshes pass without waiting.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { closedPort, startEchoBackend } from '../helpers/backends.ts';
import { handshakeHeaders, rawRequest } from '../helpers/clients.ts';
import { eventually } from '../helpers/eventually.ts';
import { FakeClock } from '../helpers/fake-clock.ts';
import { startGateway, type TestGateway } from '../helpers/gateway.ts';
import { rsaKey, signHmac, signToken, startIdentityProvider } from '../helpers/tokens.ts';

async function status(gw: TestGateway, token: string): Promise<number> {
  const response = await rawRequest(gw.port(), {
    path: '/ws',
    headers: { ...handshakeHeaders(), Authorization: `Bearer ${token}` },
  });
  response.socket.destroy();
  return response.status;
}

async function jwksGateway(t: TestContext, url: string, clock: FakeClock) {
  const backend = await startEchoBackend(t);
  return startGateway(
    t,
    {
      keySets: { idp: { jwksUrl: url, refreshInterval: '10m', refreshCooldown: '30s', fetchTimeout: '2s' } },
      auth: { keySet: 'idp', algorithms: ['RS256'] },
      routes: { app: { pool: 'app' } },
      pools: { app: { backends: [backend.url] } },
    },
    { clock },
  );
}

function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'wsgate-keys-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('a rotated key is fetched when a token names it, at most once per cool-down', async (t) => {
  const clock = new FakeClock();
  const k1 = rsaKey('k1');
  const k2 = rsaKey('k2');
  const k3 = rsaKey('k3');
  const idp = await startIdentityProvider(t, [k1]);
  const gw = await jwksGateway(t, idp.url, clock);
  assert.equal(await status(gw, await signToken(k1)), 101, 'the first fetch was awaited');
  assert.equal(idp.fetches(), 1);
  idp.serve([k1, k2]);
  // Right after the first fetch, the cool-down holds: the new kid is unknown.
  assert.equal(await status(gw, await signToken(k2)), 401);
  assert.equal(idp.fetches(), 1, 'no fetch inside the cool-down');
  clock.advance(30_000);
  assert.equal(await status(gw, await signToken(k2)), 101, 'the new kid was fetched');
  assert.equal(idp.fetches(), 2);
  // A flood of unknown kids costs one fetch per cool-down, not one per token.
  clock.advance(30_000);
  const flood = await Promise.all(Array.from({ length: 20 }, async () => status(gw, await signToken(k3))));
  assert.deepEqual(new Set(flood), new Set([401]));
  assert.equal(idp.fetches(), 3, 'one fetch for the whole flood');
  assert.equal(await gw.metric('wsgate_jwks_fetches_total', { key_set: 'idp', result: 'ok' }), 3);
  assert.equal(await gw.metric('wsgate_jwks_keys', { key_set: 'idp' }), 2);
});

test('while the identity provider is down, the last keys fetched stay in use (regression: its 503 answer crashed the process)', async (t) => {
  const clock = new FakeClock();
  const k1 = rsaKey('k1');
  const idp = await startIdentityProvider(t, [k1]);
  const gw = await jwksGateway(t, idp.url, clock);
  assert.equal(await status(gw, await signToken(k1)), 101);
  idp.fail(true);
  clock.advance(600_000); // the background refresh runs and fails
  await eventually(
    async () => (await gw.metric('wsgate_jwks_fetches_total', { result: 'error' })) === 1,
    'the failed refresh is counted',
  );
  assert.equal(await status(gw, await signToken(k1)), 101, 'the cached key still verifies');
  assert.equal(await gw.metric('wsgate_jwks_keys', { key_set: 'idp' }), 1);
  const warning = gw.logs.find((line) => line.msg === 'JWKS fetch failed; the last keys stay in use');
  assert.equal(warning?.level, 'warn');
  assert.match(String(warning?.err), /503/);
});

test('with no key ever fetched, every token is refused with 503 (fail closed)', async (t) => {
  const clock = new FakeClock();
  const gw = await jwksGateway(t, `http://127.0.0.1:${await closedPort()}/jwks.json`, clock);
  const response = await rawRequest(gw.port(), {
    path: '/ws',
    headers: { ...handshakeHeaders(), Authorization: `Bearer ${await signToken(rsaKey('k1'))}` },
  });
  response.socket.destroy();
  assert.equal(response.status, 503);
  assert.equal(response.headers['retry-after'], '1');
  assert.equal(await gw.metric('wsgate_auth_refusals_total', { reason: 'keys_unavailable' }), 1);
  assert.equal(await gw.metric('wsgate_jwks_keys', { key_set: 'idp' }), 0);
  assert.ok(gw.logs.some((line) => line.msg === 'JWKS fetch failed; no keys yet, tokens are refused'));
});

test('public keys from a PEM file and a JWKS file verify tokens', async (t) => {
  const dir = tempDir(t);
  const pemKey = rsaKey('unused');
  const jwkKey = rsaKey('file-k2');
  writeFileSync(join(dir, 'signing.pem'), pemKey.publicKey.export({ format: 'pem', type: 'spki' }));
  writeFileSync(join(dir, 'keys.json'), JSON.stringify({ keys: [jwkKey.jwk] }));
  const backend = await startEchoBackend(t);
  const gw = await startGateway(
    t,
    {
      keySets: { local: { files: ['signing.pem', 'keys.json'] } },
      auth: { keySet: 'local', algorithms: ['RS256'] },
      routes: { app: { pool: 'app' } },
      pools: { app: { backends: [backend.url] } },
    },
    { baseDir: dir },
  );
  // A PEM key has no kid: it verifies tokens whose kid no file key has.
  assert.equal(await status(gw, await signToken(pemKey)), 101);
  assert.equal(await status(gw, await signToken(jwkKey)), 101);
  assert.equal(await status(gw, await signToken(rsaKey('file-k2'))), 401, 'same kid, other key');
});

test('an HMAC secret from a file verifies HS256 tokens', async (t) => {
  const dir = tempDir(t);
  const secret = Buffer.from('a-shared-secret-of-at-least-32-bytes!!');
  writeFileSync(join(dir, 'jwt.secret'), `${secret.toString()}\n`);
  const backend = await startEchoBackend(t);
  const gw = await startGateway(
    t,
    {
      keySets: { shared: { secretFile: 'jwt.secret' } },
      auth: { keySet: 'shared', algorithms: ['HS256'] },
      routes: { app: { pool: 'app' } },
      pools: { app: { backends: [backend.url] } },
    },
    { baseDir: dir },
  );
  assert.equal(await status(gw, await signHmac(new Uint8Array(secret))), 101);
  assert.equal(await status(gw, await signHmac(new Uint8Array(Buffer.from('x'.repeat(40))))), 401);
  assert.equal(await status(gw, await signToken(rsaKey('k1'))), 401, 'an RS256 token on an HS256 route');
});

test('a client that half-closes while its token waits for a key fetch is never connected to a backend', async (t) => {
  const clock = new FakeClock();
  const k1 = rsaKey('k1');
  const k2 = rsaKey('k2');
  const idp = await startIdentityProvider(t, [k1]);
  const backend = await startEchoBackend(t);
  const gw = await startGateway(
    t,
    {
      keySets: {
        idp: { jwksUrl: idp.url, refreshInterval: '10m', refreshCooldown: '30s', fetchTimeout: '5s' },
      },
      auth: { keySet: 'idp', algorithms: ['RS256'] },
      routes: { app: { pool: 'app' } },
      pools: { app: { backends: [backend.url] } },
    },
    { clock },
  );
  await eventually(() => idp.fetches() === 1, 'the first fetch');
  // A token naming a key not fetched yet waits for the fetch, which the provider holds.
  idp.serve([k1, k2]);
  idp.hold();
  clock.advance(30_000);
  const client = connect(gw.port(), '127.0.0.1');
  client.on('error', () => {});
  const headers = { ...handshakeHeaders(), Authorization: `Bearer ${await signToken(k2)}` };
  const lines = Object.entries(headers).map(([name, value]) => `${name}: ${value}`);
  client.write(`GET /ws HTTP/1.1\r\n${lines.join('\r\n')}\r\n\r\n`);
  await eventually(() => idp.fetches() === 2, 'the fetch for the new key');
  // The client's FIN, while its token waits: sent once 'finish' fires; the gateway, in this
  // process, reads it in the poll phase of the next turns of the event loop.
  const finished = once(client, 'finish');
  client.end();
  await finished;
  for (let turn = 0; turn < 3; turn++) await new Promise((resolve) => setImmediate(resolve));
  assert.equal(gw.gateway.registry.pendingCount, 1, 'the handshake still waits for its token');
  idp.release();
  await eventually(() => gw.gateway.registry.pendingCount === 0, 'no pending handshake');
  assert.equal(await gw.metric('wsgate_upgrades_total', { code: 'CLIENT_GONE' }), 1);
  // Seen when the token check ended, before a backend attempt began.
  const rejected = gw.logs.find((line) => line.msg === 'websocket rejected');
  assert.equal(rejected?.detail, 'during the route stages');
  assert.equal(backend.connections(), 0, 'no backend connection for a client that left');
  client.destroy();
});
