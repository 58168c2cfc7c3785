/**
 * Connections bound to their token, on real sockets with the gateway's clock faked: when the
 * token's `exp` (plus the clock tolerance and the grace) passes, the live WebSocket is closed with
 * the configured code and "token expired", the backend gets 1001, and the close is counted; a
 * connection whose route does not close on expiry stays. And the cap on connections per token
 * subject: the next one gets 429 until one closes.
 */
import assert from 'node:assert/strict';
import { type TestContext, test } from 'node:test';
import { startEchoBackend } from '../helpers/backends.ts';
import { closeOf, handshakeHeaders, openClient, rawRequest } from '../helpers/clients.ts';
import { eventually, within } from '../helpers/eventually.ts';
import { FakeClock } from '../helpers/fake-clock.ts';
import { startGateway } from '../helpers/gateway.ts';
import { recordingBackend } from '../helpers/recording.ts';
import { nowSeconds, rsaKey, type SigningKey, signToken, startIdentityProvider } from '../helpers/tokens.ts';

async function tokenGateway(
  t: TestContext,
  key: SigningKey,
  backendUrl: string,
  extra: Record<string, unknown>,
  clock?: FakeClock,
) {
  const idp = await startIdentityProvider(t, [key]);
  return startGateway(
    t,
    {
      keySets: { idp: { jwksUrl: idp.url } },
      auth: {
        keySet: 'idp',
        algorithms: ['RS256'],
        clockTolerance: '5s',
        ...(extra.auth as object | undefined),
      },
      routes: {
        app: { pool: 'app' },
        lax: { pool: 'app', path: '/lax', auth: { expiry: { close: false } } },
      },
      pools: { app: { backends: [backendUrl] } },
      // Time is advanced in leaps: keepalive pings would never get their answer in time.
      websocket: { keepalive: { client: 'off' } },
      ...(extra.admission ? { admission: extra.admission } : {}),
    },
    clock ? { clock } : {},
  );
}

test('a live WebSocket is closed with the configured code when its token expires, and counted', async (t) => {
  const clock = new FakeClock();
  const key = rsaKey('k1');
  const backend = await recordingBackend(t);
  const gw = await tokenGateway(
    t,
    key,
    backend.url,
    { auth: { expiry: { grace: '10s', code: 4001 } } },
    clock,
  );
  // Expires in 60 s; closed at exp + tolerance (5 s) + grace (10 s).
  const token = await signToken(key, { exp: nowSeconds() + 60 });
  const ws = await openClient(gw.wsUrl('/'), undefined, { headers: { Authorization: `Bearer ${token}` } });
  const lax = await openClient(gw.wsUrl('/lax'), undefined, {
    headers: { Authorization: `Bearer ${token}` },
  });
  const closed = closeOf(ws);
  clock.advance(60_000);
  assert.equal(gw.gateway.registry.tunnelCount, 2, 'not yet: the tolerance and the grace run');
  clock.advance(17_000);
  assert.deepEqual(await closed, { code: 4001, reason: 'token expired' });
  assert.deepEqual(await within(backend.closed, 'the backend close'), {
    code: 1001,
    reason: 'client token expired',
  });
  await eventually(
    async () => (await gw.metric('wsgate_tunnel_errors_total', { code: 'TOKEN_EXPIRED' })) === 1,
    'the expiry counted',
  );
  assert.equal(
    await gw.metric('wsgate_closes_total', { route: 'app', code: '4xxx', initiator: 'gateway' }),
    1,
  );
  assert.equal(gw.gateway.registry.tunnelCount, 1, 'the route with expiry.close off keeps its connection');
  lax.close();
});

test('by default the client gets 1008 "token expired"', async (t) => {
  const clock = new FakeClock();
  const key = rsaKey('k1');
  const backend = await recordingBackend(t);
  const gw = await tokenGateway(t, key, backend.url, {}, clock);
  const token = await signToken(key, { exp: nowSeconds() + 2 });
  const ws = await openClient(gw.wsUrl('/'), ['bearer', token]);
  const closed = closeOf(ws);
  clock.advance(10_000);
  assert.deepEqual(await closed, { code: 1008, reason: 'token expired' });
});

test('one token subject may hold admission.perSubject.maxConnections connections; the next gets 429', async (t) => {
  const key = rsaKey('k1');
  const backend = await startEchoBackend(t);
  const gw = await tokenGateway(t, key, backend.url, { admission: { perSubject: { maxConnections: 2 } } });
  const alice = await signToken(key, { sub: 'alice' });
  const auth = { headers: { Authorization: `Bearer ${alice}` } };
  const first = await openClient(gw.wsUrl('/'), undefined, auth);
  const second = await openClient(gw.wsUrl('/lax'), undefined, auth);
  const refused = await rawRequest(gw.port(), {
    path: '/',
    headers: { ...handshakeHeaders(), ...auth.headers },
  });
  refused.socket.destroy();
  assert.equal(refused.status, 429);
  assert.equal(refused.headers['retry-after'], '1');
  assert.equal(backend.upgrades.length, 2, 'the refused one never reached the backend');
  // Another subject is not affected.
  const bob = await openClient(gw.wsUrl('/'), undefined, {
    headers: { Authorization: `Bearer ${await signToken(key, { sub: 'bob' })}` },
  });
  first.close();
  await closeOf(first);
  await eventually(async () => {
    const response = await rawRequest(gw.port(), {
      path: '/',
      headers: { ...handshakeHeaders(), ...auth.headers },
    });
    response.socket.destroy();
    return response.status === 101;
  }, 'a slot is free again once a connection closed');
  second.close();
  bob.close();
});
