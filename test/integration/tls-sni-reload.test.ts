/**
 * TLS listeners with several certificates and certificate files that change on disk, on real
 * sockets, with certificates made by openssl at test time (signed by the fixture CA). SNI picks
 * the exact name, then a one-label wildcard, else the default (also for clients without SNI), and
 * ALPN says http/1.1. A pair published anew the way Kubernetes does it (a new directory and an
 * atomic `..data` symlink rename) is served to new connections while a WebSocket opened before
 * stays up and echoes; an SNI pair rewritten in place is picked up too. A broken pair (a key that
 * is not the certificate's, garbage) is refused with a warning and a metric, and the previous
 * certificate stays in use until a good pair comes.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { type TestContext, test } from 'node:test';
import { connect as tlsConnect } from 'node:tls';
import { startEchoBackend } from '../helpers/backends.ts';
import { type Issued, issueCertificate, opensslMissing, SecretVolume } from '../helpers/certificates.ts';
import { nextMessage, openClient } from '../helpers/clients.ts';
import { eventually, within } from '../helpers/eventually.ts';
import { startGateway, type TestGateway } from '../helpers/gateway.ts';

const TLS_DIR = resolve(import.meta.dirname, '../fixtures/tls');
const CA = readFileSync(resolve(TLS_DIR, 'ca.pem'));
const DEFAULT_SAN = 'DNS:localhost, IP Address:127.0.0.1';
const skip = opensslMissing();

interface Served {
  readonly san: string | undefined;
  readonly fingerprint: string;
  readonly alpn: string | false | null;
}

/** The certificate the gateway serves for `servername` (none: no SNI is sent, as for an IP). */
function served(port: number, servername?: string): Promise<Served> {
  const socket = tlsConnect({
    host: '127.0.0.1',
    port,
    ca: CA,
    ALPNProtocols: ['http/1.1'],
    // The chain is verified; which name it is for is what the test looks at.
    checkServerIdentity: () => undefined,
    ...(servername === undefined ? {} : { servername }),
  });
  return within(
    new Promise((resolveServed, reject) => {
      socket.once('secureConnect', () => {
        const peer = socket.getPeerCertificate();
        resolveServed({
          san: peer.subjectaltname,
          fingerprint: peer.fingerprint256,
          alpn: socket.alpnProtocol,
        });
        socket.destroy();
      });
      socket.once('error', reject);
    }),
    `a TLS handshake for ${servername ?? 'no SNI'}`,
  );
}

/** A wss:// client on 127.0.0.1 that asks for `servername` and verifies the certificate for it. */
function openWss(gw: TestGateway, path: string, servername: string): ReturnType<typeof openClient> {
  return openClient(`wss://127.0.0.1:${gw.port()}${path}`, undefined, {
    createConnection: () => tlsConnect({ host: '127.0.0.1', port: gw.port(), ca: CA, servername }),
  });
}

function tlsGateway(t: TestContext, backendUrl: string, tls: Record<string, unknown>): Promise<TestGateway> {
  return startGateway(
    t,
    {
      listeners: { public: { tls: { reloadCheckInterval: '200ms', ...tls } } },
      routes: { echo: { pool: 'echo' } },
      pools: { echo: { backends: [backendUrl] } },
    },
    { baseDir: TLS_DIR },
  );
}

/** Writes an issued pair as `name.pem` and `name-key.pem` in `dir`. */
function writePair(dir: string, name: string, issued: Issued): { cert: string; key: string } {
  const paths = { cert: join(dir, `${name}.pem`), key: join(dir, `${name}-key.pem`) };
  writeFileSync(paths.cert, issued.cert);
  writeFileSync(paths.key, issued.key);
  return paths;
}

test('SNI picks the exact name, then a one-label wildcard, else the default', { skip }, async (t) => {
  const volume = new SecretVolume(t);
  const exact = writePair(volume.dir, 'exact', issueCertificate('a.example.test', ['a.example.test']));
  const wildcard = writePair(volume.dir, 'wild', issueCertificate('wild', ['*.wild.example.test']));
  const listed = writePair(volume.dir, 'listed', issueCertificate('listed', ['listed.example.test']));
  const backend = await startEchoBackend(t);
  const gw = await tlsGateway(t, backend.url, {
    cert: 'server.pem',
    key: 'server-key.pem',
    certificates: [
      exact,
      { names: ['*.wild.example.test'], ...wildcard },
      { names: ['Other.Example.test', 'b.wild.example.test'], ...listed },
    ],
  });
  const cases: [string | undefined, string][] = [
    ['a.example.test', 'DNS:a.example.test'],
    ['A.EXAMPLE.test.', 'DNS:a.example.test'],
    ['x.wild.example.test', 'DNS:*.wild.example.test'],
    ['b.wild.example.test', 'DNS:listed.example.test'], // an exact name before a wildcard
    ['other.example.test', 'DNS:listed.example.test'],
    ['y.x.wild.example.test', DEFAULT_SAN], // a wildcard covers one label only
    ['wild.example.test', DEFAULT_SAN],
    ['unknown.example.test', DEFAULT_SAN],
    [undefined, DEFAULT_SAN],
  ];
  for (const [servername, san] of cases) {
    const result = await served(gw.port(), servername);
    assert.equal(result.san, san, `served for ${servername ?? 'no SNI'}`);
    assert.equal(result.alpn, 'http/1.1');
  }
  const ws = await openWss(gw, '/sni', 'a.example.test');
  ws.send('by name');
  assert.equal((await nextMessage(ws)).data.toString(), 'by name');
  ws.close();
});

test('a pair swapped on disk like Kubernetes does is served to new connections; old ones stay', {
  skip,
}, async (t) => {
  const volume = new SecretVolume(t);
  const first = issueCertificate('localhost', ['localhost']);
  volume.publish(first.cert, first.key);
  const backend = await startEchoBackend(t);
  const gw = await tlsGateway(t, backend.url, { cert: volume.certPath, key: volume.keyPath });
  assert.equal((await served(gw.port())).fingerprint, first.fingerprint);
  const expiry = { listener: 'public', certificate: 'default' };
  assert.equal(
    await gw.metric('wsgate_tls_certificate_expiry_timestamp_seconds', expiry),
    first.notAfter.getTime() / 1000,
  );
  const ws = await openWss(gw, '/old', 'localhost');

  const second = issueCertificate('localhost', ['localhost']);
  volume.publish(second.cert, second.key);
  await eventually(
    async () => (await served(gw.port())).fingerprint === second.fingerprint,
    'the new certificate',
  );
  assert.equal(await gw.metric('wsgate_tls_reloads_total', { result: 'reloaded' }), 1);
  assert.equal(await gw.metric('wsgate_tls_reloads_total', { result: 'refused' }), 0);
  assert.equal(
    await gw.metric('wsgate_tls_certificate_expiry_timestamp_seconds', expiry),
    second.notAfter.getTime() / 1000,
  );
  assert.ok(gw.logs.some((line) => line.msg === 'TLS certificate reloaded' && line.cert === volume.certPath));
  ws.send('still here');
  assert.equal((await nextMessage(ws)).data.toString(), 'still here');
  const fresh = await openWss(gw, '/new', 'localhost');
  fresh.send('new one');
  assert.equal((await nextMessage(fresh)).data.toString(), 'new one');
  ws.close();
  fresh.close();
});

test('a broken pair is refused with a warning and the old certificate stays', { skip }, async (t) => {
  const volume = new SecretVolume(t);
  const good = issueCertificate('localhost', ['localhost']);
  volume.publish(good.cert, good.key);
  const backend = await startEchoBackend(t);
  const gw = await tlsGateway(t, backend.url, { cert: volume.certPath, key: volume.keyPath });
  const ws = await openWss(gw, '/old', 'localhost');
  const refused = async (count: number): Promise<void> =>
    eventually(
      async () => (await gw.metric('wsgate_tls_reloads_total', { result: 'refused' })) === count,
      `${count} refused reloads`,
    );

  const other = issueCertificate('localhost', ['localhost']);
  volume.publish(other.cert, good.key); // a key that is not the certificate's
  await refused(1);
  const warning = gw.logs.find((line) => line.msg?.startsWith('TLS certificate reload refused'));
  assert.equal(warning?.level, 'warn');
  assert.equal(warning?.cert, volume.certPath);
  assert.equal(warning?.key, volume.keyPath);
  assert.equal((await served(gw.port())).fingerprint, good.fingerprint);

  volume.publish(Buffer.from('not a certificate'), Buffer.from('\x00\xff garbage'));
  await refused(2);
  assert.equal((await served(gw.port())).fingerprint, good.fingerprint);
  ws.send('unharmed');
  assert.equal((await nextMessage(ws)).data.toString(), 'unharmed');

  volume.publish(other.cert, other.key);
  await eventually(
    async () => (await served(gw.port())).fingerprint === other.fingerprint,
    'the repaired pair',
  );
  assert.equal(await gw.metric('wsgate_tls_reloads_total', { result: 'reloaded' }), 1);
  assert.equal(
    await gw.metric('wsgate_tls_reloads_total', { result: 'refused' }),
    2,
    'each broken pair once',
  );
  ws.close();
});

test('an SNI pair rewritten in place is served for its name', { skip }, async (t) => {
  const volume = new SecretVolume(t);
  const first = issueCertificate('a.example.test', ['a.example.test']);
  const paths = writePair(volume.dir, 'a', first);
  const backend = await startEchoBackend(t);
  const gw = await tlsGateway(t, backend.url, {
    cert: 'server.pem',
    key: 'server-key.pem',
    certificates: [paths],
  });
  assert.equal((await served(gw.port(), 'a.example.test')).fingerprint, first.fingerprint);
  const second = issueCertificate('a.example.test', ['a.example.test', 'b.example.test']);
  writePair(volume.dir, 'a', second);
  await eventually(
    async () => (await served(gw.port(), 'a.example.test')).fingerprint === second.fingerprint,
    'the rewritten certificate',
  );
  // Its names come from the certificate: the new one brings b.example.test along.
  assert.equal((await served(gw.port(), 'b.example.test')).fingerprint, second.fingerprint);
  assert.equal((await served(gw.port())).san, DEFAULT_SAN);
  assert.equal(
    await gw.metric('wsgate_tls_reloads_total', {
      listener: 'public',
      certificate: 'a.example.test',
      result: 'reloaded',
    }),
    1,
  );
});
