/**
 * What a client cannot make the gateway forward: request lines of an HTTP version the listener
 * does not speak (`HTTP/2.0`, `HTTP/0.9` get 505 and never reach a backend, for plain requests and
 * upgrades), and underscore spellings of the headers the gateway controls (`X_Forwarded_For`,
 * `X_Real_IP`), which CGI, WSGI and PHP backends would read as the real ones.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startEchoBackend, startHttpBackend } from '../helpers/backends.ts';
import { handshakeLines, openClient } from '../helpers/clients.ts';
import { startGateway } from '../helpers/gateway.ts';
import { exchange } from '../helpers/raw-http.ts';

test('regression: GET / HTTP/2.0 and HTTP/0.9 on an HTTP/1 listener get 505, plain and upgrade', async (t) => {
  const backend = await startHttpBackend(t, (_req, res) => res.end('ok'));
  const gw = await startGateway(t, {
    routes: { app: { pool: 'app' } },
    pools: { app: { backends: [backend.url] } },
  });
  const upgradeLines = handshakeLines('a');
  for (const version of ['2.0', '0.9']) {
    const plain = await exchange(gw.port(), `GET / HTTP/${version}\r\nHost: a\r\n\r\n`);
    assert.deepEqual(
      plain.responses.map((response) => response.status),
      [505],
      `plain HTTP/${version}: 505`,
    );
    const upgrade = await exchange(gw.port(), `GET /ws HTTP/${version}\r\n${upgradeLines}\r\n`);
    assert.deepEqual(
      upgrade.responses.map((response) => response.status),
      [505],
      `upgrade HTTP/${version}: 505`,
    );
  }
  assert.equal(backend.connections(), 0, 'the backend is never contacted');
  const ok = await exchange(gw.port(), 'GET / HTTP/1.0\r\nHost: a\r\n\r\n');
  assert.equal(ok.responses[0]?.status, 200, 'HTTP/1.0 is still served');
  assert.equal(await gw.metric('wsgate_upgrades_total', { code: 'HTTP_VERSION_UNSUPPORTED' }), 2);
});

test('regression: underscore spellings of forwarding headers never reach a backend', async (t) => {
  const backend = await startHttpBackend(t, (_req, res) => res.end('ok'));
  const echo = await startEchoBackend(t);
  const gw = await startGateway(t, {
    routes: { app: { pool: 'app', path: '/' }, ws: { pool: 'ws', path: '/ws' } },
    pools: { app: { backends: [backend.url] }, ws: { backends: [echo.url] } },
  });
  const spoofed = {
    X_Forwarded_For: '6.6.6.6',
    X_Real_IP: '6.6.6.6',
    x_forwarded_host: 'evil.example',
    X_Request_Id: 'forged',
    X_App_Hint: 'kept',
  };
  const lines = Object.entries(spoofed)
    .map(([name, value]) => `${name}: ${value}\r\n`)
    .join('');
  await exchange(gw.port(), `GET /plain HTTP/1.1\r\nHost: a\r\nConnection: close\r\n${lines}\r\n`);
  const ws = await openClient(gw.wsUrl('/ws'), undefined, { headers: spoofed });
  ws.terminate();
  const received = [
    ['plain request', backend.requests[0]?.rawHeaders ?? []],
    ['upgrade', echo.upgrades[0]?.rawHeaders ?? []],
  ] as const;
  for (const [what, raw] of received) {
    const names = raw.filter((_value, index) => index % 2 === 0).map((name) => name.toLowerCase());
    assert.ok(names.length > 0, `${what} reached the backend`);
    for (const name of ['x_forwarded_for', 'x_real_ip', 'x_forwarded_host', 'x_request_id']) {
      assert.ok(!names.includes(name), `${what}: ${name} is dropped`);
    }
    assert.ok(names.includes('x_app_hint'), `${what}: an unrelated underscore header passes`);
    const xff =
      raw[raw.findIndex((name, index) => index % 2 === 0 && name.toLowerCase() === 'x-forwarded-for') + 1];
    assert.equal(xff, '127.0.0.1', `${what}: X-Forwarded-For is the real peer`);
  }
});

test('regression: /%73olo/x reaches the /solo/ route and /solo%2fx is refused, on both paths', async (t) => {
  const root = await startHttpBackend(t, (_req, res) => res.end('root'));
  const solo = await startHttpBackend(t, (_req, res) => res.end('solo'));
  const gw = await startGateway(t, {
    routes: { root: { pool: 'root', path: '/' }, solo: { pool: 'solo', path: '/solo/' } },
    pools: { root: { backends: [root.url] }, solo: { backends: [solo.url] } },
  });
  const get = async (target: string) =>
    (await exchange(gw.port(), `GET ${target} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n`))
      .responses[0];
  const encoded = await get('/%73olo/x');
  assert.equal(encoded?.body, 'solo', '/%73olo/x goes where a decoding backend reads it');
  assert.equal(solo.requests[0]?.url, '/%73olo/x', 'and the target is forwarded as sent');
  assert.equal((await get('//solo/x'))?.body, 'solo', '//solo/x too');
  assert.equal((await get('/solo%2fx'))?.status, 400, '/solo%2fx is refused');
  const upgradeLines = handshakeLines('a');
  const upgrade = await exchange(gw.port(), `GET /solo%2fx HTTP/1.1\r\n${upgradeLines}\r\n`);
  assert.equal(upgrade.responses[0]?.status, 400, 'an upgrade to /solo%2fx is refused');
  assert.equal(root.requests.length, 0, 'nothing reached the / route');
});

test('regression: an upgrade pipelined behind a plain request waits for its response', async (t) => {
  const echo = await startEchoBackend(t, {
    onRequest: (_req, res) => {
      setTimeout(() => res.end('slow answer'), 200);
    },
  });
  const gw = await startGateway(t, {
    routes: { app: { pool: 'app' } },
    pools: { app: { backends: [echo.url] } },
  });
  const upgradeLines = handshakeLines('a');
  const result = await exchange(
    gw.port(),
    `GET /slow HTTP/1.1\r\nHost: a\r\n\r\nGET /ws HTTP/1.1\r\n${upgradeLines}\r\n`,
    { count: 2 },
  );
  assert.deepEqual(
    result.responses.map((response) => response.status),
    [200, 101],
    'the plain answer first, then the 101',
  );
  assert.equal(result.responses[0]?.body, 'slow answer');
});

test('regression: a Host a URL parser would read as another host gets 400, plain and upgrade', async (t) => {
  const backend = await startHttpBackend(t, (_req, res) => res.end('ok'));
  const gw = await startGateway(t, {
    routes: { app: { pool: 'app' } },
    pools: { app: { backends: [backend.url] } },
  });
  for (const host of [
    'public.example.com:1@admin.example.com',
    'evil.other.com, x.example.com',
    '[admin.example.com]',
  ]) {
    const plain = await exchange(gw.port(), `GET / HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
    assert.equal(plain.responses[0]?.status, 400, `plain request, Host: ${host}`);
    const upgradeLines = handshakeLines(host);
    const upgrade = await exchange(gw.port(), `GET /ws HTTP/1.1\r\n${upgradeLines}\r\n`);
    assert.equal(upgrade.responses[0]?.status, 400, `upgrade, Host: ${host}`);
  }
  assert.equal(backend.connections(), 0, 'the backend is never contacted');
});
