/**
 * The Origin policy on real sockets, against Cross-Site WebSocket Hijacking: an upgrade from an
 * allowed origin (exact or by subdomain) is relayed; one from any other origin, or one that is no
 * origin at all, gets 403 and the backend is never contacted; a missing Origin is refused only
 * when the route says so; plain HTTP requests that carry an Origin are checked the same way
 * (long-polling must not get past it), those without one pass; a route can have its own list.
 */
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { type TestContext, test } from 'node:test';
import { startEchoBackend } from '../helpers/backends.ts';
import { handshakeHeaders, rawRequest } from '../helpers/clients.ts';
import { startGateway, type TestGateway } from '../helpers/gateway.ts';

async function originGateway(t: TestContext, backendUrl: string, origins: Record<string, unknown>) {
  return startGateway(t, {
    origins,
    routes: {
      app: { pool: 'app' },
      partner: { pool: 'app', path: '/partner', origins: { allow: ['https://partner.example.net'] } },
    },
    pools: { app: { backends: [backendUrl] } },
  });
}

/** The status of an upgrade request with `origin` (none when undefined). */
async function upgradeStatus(gw: TestGateway, origin: string | undefined, path = '/'): Promise<number> {
  const headers = handshakeHeaders();
  if (origin !== undefined) headers.Origin = origin;
  const response = await rawRequest(gw.port(), { path, headers });
  response.socket.destroy();
  return response.status;
}

/** The status of a plain GET with `origin` (none when undefined). */
function getStatus(gw: TestGateway, origin: string | undefined): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port: gw.port(),
        path: '/socket.io/?EIO=4&transport=polling',
        headers: origin ? { origin } : {},
      },
      (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      },
    );
    req.on('error', reject);
    req.end();
  });
}

const ALLOW = ['https://app.example.com', 'https://*.example.com', 'http://localhost:3000', 'null'];

test('an upgrade from an allowed origin is relayed; any other gets 403 and the backend never sees it', async (t) => {
  const backend = await startEchoBackend(t);
  const gw = await originGateway(t, backend.url, { allow: ALLOW });
  for (const origin of [
    'https://app.example.com',
    'https://chat.eu.example.com',
    'http://localhost:3000',
    'null',
  ]) {
    assert.equal(await upgradeStatus(gw, origin), 101, origin);
  }
  const upgradesBefore = backend.connections();
  for (const origin of [
    'https://example.com', // the wildcard is for names under it
    'https://example.com.evil.net',
    'https://evilexample.com',
    'http://app.example.com', // another scheme
    'http://localhost:3001', // another port
    'https://app.example.com/chat', // not an origin
  ]) {
    assert.equal(await upgradeStatus(gw, origin), 403, origin);
  }
  assert.equal(backend.connections(), upgradesBefore, 'no refused upgrade reached the backend');
  assert.equal(await gw.metric('wsgate_origin_refusals_total', { route: 'app', reason: 'not_allowed' }), 5);
  assert.equal(await gw.metric('wsgate_origin_refusals_total', { route: 'app', reason: 'malformed' }), 1);
  assert.equal(await gw.metric('wsgate_upgrades_total', { code: 'ORIGIN_REFUSED' }), 6);
  assert.equal(
    await upgradeStatus(gw, undefined),
    101,
    'a non-browser client without Origin passes by default',
  );
});

test('a route can refuse upgrades without an Origin, and have its own list', async (t) => {
  const backend = await startEchoBackend(t);
  const gw = await originGateway(t, backend.url, { allow: ALLOW, missing: 'refuse' });
  assert.equal(await upgradeStatus(gw, undefined), 403);
  assert.equal(await gw.metric('wsgate_origin_refusals_total', { reason: 'missing' }), 1);
  assert.equal(
    await upgradeStatus(gw, 'https://partner.example.net', '/partner'),
    101,
    "the route's own list",
  );
  assert.equal(
    await upgradeStatus(gw, 'https://app.example.com', '/partner'),
    403,
    'replacing the default one',
  );
  assert.equal(await upgradeStatus(gw, undefined, '/partner'), 403, 'missing: refuse is inherited');
});

test('plain HTTP requests carrying an Origin are checked too; those without one pass', async (t) => {
  const backend = await startEchoBackend(t);
  const gw = await originGateway(t, backend.url, { allow: ALLOW });
  assert.equal(await getStatus(gw, 'https://app.example.com'), 200);
  assert.equal(await getStatus(gw, undefined), 200, 'a same-origin GET has no Origin');
  const before = backend.connections();
  assert.equal(await getStatus(gw, 'https://evil.example.org'), 403);
  assert.equal(backend.connections(), before, 'the refused request never reached the backend');
  assert.equal(await gw.metric('wsgate_http_requests_total', { status: '403' }), 1);
});

test('with plainHttp off, only upgrades are checked', async (t) => {
  const backend = await startEchoBackend(t);
  const gw = await originGateway(t, backend.url, { allow: ALLOW, plainHttp: false });
  assert.equal(await getStatus(gw, 'https://evil.example.org'), 200);
  assert.equal(await upgradeStatus(gw, 'https://evil.example.org'), 403);
});
