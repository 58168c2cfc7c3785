/**
 * Reloads under load: 2,000 live WebSockets (plain and wss) exchange numbered messages while the
 * configuration is changed five times (a route added, a backend removed, a limit changed, the
 * certificate swapped, a listener added) with an invalid configuration in between. No connection
 * is dropped but those on the removed backend, which get 1001; no message is lost or reordered;
 * the invalid configuration changes nothing.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { resolve } from 'node:path';
import { test } from 'node:test';
import { connect as tlsConnect } from 'node:tls';
import { WebSocket } from 'ws';
import { parseConfigText } from '../../src/config/load.ts';
import { startEchoBackend } from '../helpers/backends.ts';
import { issueCertificate, opensslMissing } from '../helpers/certificates.ts';
import { closeOf, openClient } from '../helpers/clients.ts';
import { eventually, within } from '../helpers/eventually.ts';
import { startGateway, testConfig } from '../helpers/gateway.ts';

const TLS_DIR = resolve(import.meta.dirname, '../fixtures/tls');
const CLIENTS = 2_000;
const SECURE_SHARE = 5; // one client in five over wss
const PER_TICK = 3;
const TICK_MS = 100;

/** One client of the load: sends numbered messages, checks that each comes back, in order. */
interface LoadClient {
  readonly ws: WebSocket;
  sent: number;
  received: number;
  disorder: number;
  closeCode: number | undefined;
}

function track(ws: WebSocket): LoadClient {
  const client: LoadClient = { ws, sent: 0, received: 0, disorder: 0, closeCode: undefined };
  ws.on('message', (data) => {
    const seq = Number(String(data).split(':')[1]);
    if (seq !== client.received + 1) client.disorder++;
    client.received = seq;
  });
  ws.on('close', (code) => {
    client.closeCode = code;
  });
  return client;
}

test('five reloads and an invalid one under 2,000 live WebSockets: only the removed backend’s get 1001, no message lost or reordered', {
  skip: opensslMissing(),
  timeout: 120_000,
}, async (t) => {
  const [a, b] = [await startEchoBackend(t), await startEchoBackend(t)];
  assert.ok(a && b);
  const dir = mkdtempSync(resolve(tmpdir(), 'wsgate-reload-load-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const issued = issueCertificate('swapped.test', ['localhost']);
  writeFileSync(resolve(dir, 'swapped.pem'), issued.cert);
  writeFileSync(resolve(dir, 'swapped-key.pem'), issued.key);
  const secure = (cert: string, key: string) => ({ address: '127.0.0.1', port: 0, tls: { cert, key } });
  let raw: Record<string, unknown> = {
    log: { level: 'info' },
    listeners: {
      public: { address: '127.0.0.1', port: 0 },
      secure: secure(resolve(TLS_DIR, 'server.pem'), resolve(TLS_DIR, 'server-key.pem')),
    },
    routes: { chat: { path: '/chat', pool: 'echo' } },
    pools: { echo: { backends: [a.url, b.url], drainTimeout: '300ms' } },
    websocket: { maxMessageSize: { clientToBackend: '64KiB' } },
    shutdown: { closeSpread: '300ms', drainTimeout: '10s' },
  };
  const gw = await startGateway(t, raw);
  const ca = readFileSync(resolve(TLS_DIR, 'ca.pem'));
  const reload = async (change: Record<string, unknown>) => {
    raw = { ...raw, ...change };
    const outcome = await gw.gateway.reload(() => testConfig(raw));
    assert.equal(outcome.result, 'ok', JSON.stringify(outcome));
    return outcome;
  };

  // 2,000 clients, in batches, each placed on the backend its handshake reached.
  const clients: LoadClient[] = [];
  for (let start = 0; start < CLIENTS; start += 100) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(100, CLIENTS - start) }, async (_, offset) => {
        const index = start + offset;
        const url =
          index % SECURE_SHARE === 0
            ? `wss://localhost:${gw.port('secure')}/chat`
            : `ws://127.0.0.1:${gw.port('public')}/chat`;
        return openClient(url, undefined, { ca });
      }),
    );
    clients.push(...batch.map(track));
  }
  await eventually(() => a.sockets.length + b.sockets.length >= CLIENTS, 'every backend socket');
  const onBackendB = b.sockets.length;
  assert.ok(onBackendB > 0 && a.sockets.length > 0, 'the load is on both backends');

  // Traffic: every client sends PER_TICK numbered messages per tick while it is open.
  let sending = true;
  const sendAll = (): void => {
    for (const client of clients) {
      if (client.ws.readyState !== WebSocket.OPEN) continue;
      for (let i = 0; i < PER_TICK; i++) client.ws.send(`m:${++client.sent}`);
    }
  };
  const traffic = (async () => {
    while (sending) {
      sendAll();
      await new Promise((done) => setTimeout(done, TICK_MS));
    }
  })();
  const settle = () => new Promise((done) => setTimeout(done, 3 * TICK_MS));
  const fingerprint = () =>
    within(
      new Promise<string>((done, fail) => {
        const socket = tlsConnect(
          { host: '127.0.0.1', port: gw.port('secure'), servername: 'localhost', ca },
          () => {
            done(socket.getPeerCertificate().fingerprint256);
            socket.destroy();
          },
        );
        socket.once('error', fail);
      }),
      'a TLS handshake',
    );
  const probe = await openClient(`ws://127.0.0.1:${gw.port('public')}/chat`);
  const extraConnections: WebSocket[] = [probe];
  try {
    await settle();
    // 1. A route added.
    await reload({
      routes: { chat: { path: '/chat', pool: 'echo' }, news: { path: '/news', pool: 'echo' } },
    });
    extraConnections.push(await openClient(`ws://127.0.0.1:${gw.port('public')}/news`));
    await settle();
    // 2. A backend removed: its WebSockets get 1001 within drainTimeout plus closeSpread.
    const hashBefore = (await reload({ pools: { echo: { backends: [a.url], drainTimeout: '300ms' } } })).hash;
    await settle();
    // An invalid configuration in between changes nothing.
    const invalid = await gw.gateway.reload(() =>
      parseConfigText('routes: { chat: { path: /chat, pool: gone } }\n', {
        file: 'bad.yaml',
        baseDir: dir,
        env: {},
      }),
    );
    assert.equal(invalid.result, 'invalid');
    assert.equal(invalid.hash, hashBefore, 'the configuration in force is unchanged');
    await settle();
    // 3. A limit changed: WebSockets opened from now on are held to it, those open keep theirs.
    await reload({ websocket: { maxMessageSize: { clientToBackend: '16KiB' } } });
    const young = await openClient(`ws://127.0.0.1:${gw.port('public')}/chat`);
    const youngClosed = closeOf(young);
    young.send('y'.repeat(32 * 1024));
    assert.equal((await youngClosed).code, 1009, 'the new limit holds for a new WebSocket');
    const probeEcho = new Promise((done) => probe.once('message', done));
    probe.send('p'.repeat(32 * 1024));
    await within(probeEcho, 'the old limit for a WebSocket opened before');
    await settle();
    // 4. The certificate swapped.
    const before = await fingerprint();
    await reload({
      listeners: {
        ...(raw.listeners as object),
        secure: secure(resolve(dir, 'swapped.pem'), resolve(dir, 'swapped-key.pem')),
      },
    });
    assert.notEqual(await fingerprint(), before);
    assert.equal(await fingerprint(), issued.fingerprint);
    await settle();
    // 5. A listener added.
    await reload({ listeners: { ...(raw.listeners as object), extra: { address: '127.0.0.1', port: 0 } } });
    extraConnections.push(await openClient(`ws://127.0.0.1:${gw.port('extra')}/chat`));
    await settle();
  } finally {
    sending = false;
    await traffic;
  }
  // Every message sent on a connection still open comes back.
  await eventually(
    () => clients.every((client) => client.closeCode !== undefined || client.received === client.sent),
    'every echo back',
    20_000,
  );
  const closed = clients.filter((client) => client.closeCode !== undefined);
  assert.equal(closed.length, onBackendB, 'exactly the WebSockets of the removed backend closed');
  assert.ok(
    closed.every((client) => client.closeCode === 1001),
    'each with 1001',
  );
  assert.equal(
    a.sockets.filter((socket) => socket.readyState === WebSocket.OPEN).length,
    CLIENTS - onBackendB + extraConnections.filter((ws) => ws.readyState === WebSocket.OPEN).length,
    'the backend left keeps every other WebSocket',
  );
  assert.equal(
    clients.reduce((sum, client) => sum + client.disorder, 0),
    0,
    'no message lost or out of order',
  );
  const open = clients.filter((client) => client.closeCode === undefined);
  assert.ok(open.every((client) => client.sent > 0 && client.received === client.sent));
  assert.equal(await gw.metric('wsgate_config_reloads_total', { result: 'ok' }), 5);
  assert.equal(await gw.metric('wsgate_config_reloads_total', { result: 'invalid' }), 1);
  for (const client of open) client.ws.close();
  for (const ws of extraConnections) ws.close();
  await eventually(
    async () => (await gw.metric('wsgate_connections_active')) === 0,
    'every client closed',
    20_000,
  );
});
