// biome-ignore-all lint/suspicious/noTemplateCurlyInString: "${NAME}" here is the configuration's reference syntax.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, it } from 'node:test';
import { ConfigError } from '../../../src/config/config-error.ts';
import { loadConfigFile, parseConfigText } from '../../../src/config/load.ts';
import { suggestKey } from '../../../src/config/zod-issues.ts';

const ROOT = resolve(import.meta.dirname, '../../..');
const VALID = resolve(ROOT, 'test/fixtures/configs/valid');

function problemsOf(text: string, env: Record<string, string | undefined> = {}): string {
  try {
    parseConfigText(text, { file: 'c.yaml', baseDir: VALID, env });
  } catch (error) {
    if (error instanceof ConfigError) return error.format();
    throw error;
  }
  assert.fail('expected a ConfigError');
}

function assertDeepFrozen(value: unknown, path = 'config'): void {
  if (typeof value !== 'object' || value === null || ArrayBuffer.isView(value)) return;
  assert.ok(Object.isFrozen(value), `${path} is not frozen`);
  for (const [key, child] of Object.entries(value)) assertDeepFrozen(child, `${path}.${key}`);
}

/** The `tls` block of a listener that sets only `cert` and `key`. */
function testTlsDefaults() {
  const text = readFileSync(resolve(VALID, 'minimal.yaml'), 'utf8').replace(
    'port: 8080',
    'port: 8080\n    tls: { cert: ../../tls/server.pem, key: ../../tls/server-key.pem }',
  );
  const tls = parseConfigText(text, { file: 'x.yaml', baseDir: VALID, env: {} }).listeners.public?.tls;
  assert.ok(tls);
  return tls;
}

describe('loadConfigFile', () => {
  it('loads the example configuration at the repository root', () => {
    const config = loadConfigFile(resolve(ROOT, 'config.example.yaml'), {});
    assert.deepEqual(config.listeners.public, {
      address: '127.0.0.1',
      port: 8080,
      proxyProtocol: 'off',
      proxyProtocolPeers: [],
      handshakeTimeout: 10_000,
      requestTimeout: 60_000,
      keepAliveTimeout: 5_000,
      maxHeaderSize: 16_384,
    });
    assert.deepEqual(config.admin, {
      enabled: true,
      readiness: 'listening',
      address: '127.0.0.1',
      port: 8410,
    });
    assert.deepEqual(config.routes.echo, { hosts: [], path: '/', pool: 'echo' });
    assert.deepEqual(config.pools.echo?.backends, [
      { url: 'http://127.0.0.1:9001', weight: 1 },
      { url: 'http://127.0.0.1:9002', weight: 1 },
    ]);
  });

  it('fills in every default for a minimal file', () => {
    const config = loadConfigFile(resolve(VALID, 'minimal.yaml'), {});
    assert.deepEqual(config, {
      log: {
        level: 'info',
        format: 'json',
        query: 'redact',
        httpRequests: { level: 'info', sample: 1 },
      },
      workers: 1,
      listenerSharing: 'supervisor',
      admin: { enabled: true, readiness: 'listening', address: '127.0.0.1', port: 8410 },
      listeners: {
        public: {
          address: '0.0.0.0',
          port: 8080,
          proxyProtocol: 'off',
          proxyProtocolPeers: [],
          handshakeTimeout: 10_000,
          requestTimeout: 60_000,
          keepAliveTimeout: 5_000,
          maxHeaderSize: 16_384,
        },
      },
      routes: { echo: { hosts: [], path: '/', pool: 'echo' } },
      pools: {
        echo: {
          backends: [{ url: 'http://127.0.0.1:9001', weight: 1 }],
          connectTimeout: 5_000,
          handshakeTimeout: 10_000,
          responseTimeout: 60_000,
          retries: 2,
          preserveHost: true,
          discovery: { interval: 10_000, timeout: 5_000 },
          drainTimeout: 30_000,
          slowStart: 'off',
          balance: 'round_robin',
          health: { passive: { enabled: true, failures: 5, ejectFor: 30_000, maxEjectedShare: 0.5 } },
          tls: { verify: true },
        },
      },
      forwarding: { trustedProxies: [] },
      tunnel: { closeTimeout: 5_000, sendTimeout: 30_000 },
      admission: {
        maxConnections: 'off',
        perClient: { maxConnections: 'off', handshakeRate: 'off' },
        perSubject: { maxConnections: 'off' },
        maxTrackedClients: 100_000,
        store: 'memory',
      },
      keySets: {},
      auth: {
        keySet: 'off',
        algorithms: [],
        issuer: 'off',
        audience: 'off',
        clockTolerance: 30_000,
        requireExpiry: true,
        requiredClaims: {},
        tokenFrom: ['authorization', 'subprotocol'],
        subprotocolMarker: 'bearer',
        cookie: 'access_token',
        queryParameter: 'access_token',
        claimHeaders: {},
        expiry: { close: true, grace: 0, code: 1008 },
      },
      origins: { allow: [], missing: 'allow', plainHttp: true },
      websocket: {
        maxMessageSize: { clientToBackend: 16 * 1024 * 1024, backendToClient: 'off' },
        maxFrameSize: { clientToBackend: 'off', backendToClient: 'off' },
        messageRate: { clientToBackend: 'off', backendToClient: 'off' },
        byteRate: { clientToBackend: 'off', backendToClient: 'off' },
        keepalive: { client: 30_000, backend: 'off', timeout: 30_000 },
        idleTimeout: 'off',
        pingsCountAsActivity: false,
        maxLifetime: 'off',
        lifetimeJitter: 0.1,
      },
      shutdown: { drainDelay: 0, drainTimeout: 30_000, closeSpread: 1_000 },
      reload: { watch: false, checkInterval: 5_000 },
    });
  });

  it('reads PEM files relative to the configuration file and normalizes values', () => {
    const config = loadConfigFile(resolve(VALID, 'tls.yaml'), {});
    const tls = config.listeners.secure?.tls;
    assert.ok(tls);
    assert.equal(tls.cert.path, resolve(ROOT, 'test/fixtures/tls/server.pem'));
    assert.ok(tls.cert.pem.toString().includes('BEGIN CERTIFICATE'));
    assert.ok(tls.key.pem.toString().includes('PRIVATE KEY'));
    assert.equal(tls.minVersion, 'TLSv1.3');
    assert.equal(tls.ciphers, 'TLS_AES_128_GCM_SHA256:ECDHE-ECDSA-AES128-GCM-SHA256');
    assert.equal(tls.reloadCheckInterval, 30_000);
    assert.deepEqual(
      tls.certificates.map((entry) => ({ names: entry.names, cert: entry.cert.path })),
      [
        {
          names: ['chat.example.com', '*.chat.example.com'],
          cert: resolve(ROOT, 'test/fixtures/tls/server.pem'),
        },
        { names: undefined, cert: resolve(ROOT, 'test/fixtures/tls/server.pem') },
      ],
    );
    assert.equal(config.listeners.secure?.proxyProtocol, 'v2');
    assert.deepEqual(config.listeners.secure?.proxyProtocolPeers, ['10.0.0.0/8', '192.0.2.10']);
    assert.deepEqual(config.routes.chat?.hosts, ['chat.example.com', '*.chat.example.com']);
    assert.deepEqual(config.pools.chat?.backends, [
      { url: 'https://127.0.0.1:9443', weight: 1 },
      { url: 'https://localhost:9444', weight: 3 },
    ]);
    assert.equal(config.pools.chat?.tls.serverName, 'localhost');
  });

  it('fills in the TLS defaults', () => {
    const config = testTlsDefaults();
    assert.deepEqual(
      { ...config, cert: config.cert.path, key: config.key.path },
      {
        cert: resolve(ROOT, 'test/fixtures/tls/server.pem'),
        key: resolve(ROOT, 'test/fixtures/tls/server-key.pem'),
        certificates: [],
        minVersion: 'TLSv1.2',
        reloadCheckInterval: 10_000,
      },
    );
  });

  it('returns a deep-frozen configuration (Buffers excepted)', () => {
    const config = loadConfigFile(resolve(VALID, 'tls.yaml'), {});
    assertDeepFrozen(config);
    const backends: unknown = config.pools.chat?.backends;
    assert.ok(Array.isArray(backends));
    assert.throws(() => backends.push('x'), TypeError);
    assert.equal(Object.isFrozen(config.listeners.secure?.tls?.cert.pem), false);
  });

  it('uses the given environment', () => {
    const text = readFileSync(resolve(VALID, 'minimal.yaml'), 'utf8');
    const config = parseConfigText(text.replace('port: 8080', 'port: ${PORT}'), {
      file: 'x.yaml',
      baseDir: VALID,
      env: { PORT: '7000' },
    });
    assert.equal(config.listeners.public?.port, 7000);
  });

  it('reports an unreadable file as one problem without a position, named as given', () => {
    let error: unknown;
    try {
      loadConfigFile('no/such/config.yaml', {});
    } catch (thrown) {
      error = thrown;
    }
    assert.ok(error instanceof ConfigError);
    assert.equal(error.format(), 'no/such/config.yaml: cannot read the file: no such file (ENOENT)');
    assert.deepEqual(error.problems[0], {
      file: 'no/such/config.yaml',
      line: 0,
      column: 0,
      path: '',
      message: 'cannot read the file: no such file (ENOENT)',
    });
    assert.throws(
      () => loadConfigFile(VALID, {}),
      (e: unknown) => e instanceof ConfigError && /EISDIR/.test(e.message),
    );
  });
});

describe('parseConfigText problems', () => {
  const minimal = readFileSync(resolve(VALID, 'minimal.yaml'), 'utf8');

  it('points a missing key at the mapping that should hold it', () => {
    assert.equal(
      problemsOf(minimal.replace('    port: 8080\n', '    address: 127.0.0.1\n')),
      'c.yaml:2:3 listeners.public.port: is required',
    );
  });

  it('points an unknown key at the key, with a suggestion when one is close', () => {
    assert.equal(
      problemsOf(`${minimal}    tls:\n      verfy: false\n      sni: x\n`),
      [
        'c.yaml:11:7 pools.echo.tls: unknown key "verfy" (did you mean "verify"?)',
        'c.yaml:12:7 pools.echo.tls: unknown key "sni"',
      ].join('\n'),
    );
  });

  it('words common schema messages naturally', () => {
    const text = `${minimal}log:\n  format: xml\n  level: 3\nadmin:\n  enabled: "yes"\n  port: 99999\n`;
    assert.equal(
      problemsOf(text),
      [
        'c.yaml:11:11 log.format: must be one of: json, pretty',
        'c.yaml:12:10 log.level: must be one of: trace, debug, info, warn, error, fatal, silent',
        'c.yaml:14:12 admin.enabled: must be true or false',
        'c.yaml:15:9 admin.port: must be at most 65535',
      ].join('\n'),
    );
  });

  it('explains that durations and sizes need a unit', () => {
    const text = minimal.replace(
      '    port: 8080\n',
      '    port: 8080\n    handshakeTimeout: 10\n    maxHeaderSize: 1024\n',
    );
    assert.equal(
      problemsOf(text),
      [
        'c.yaml:4:23 listeners.public.handshakeTimeout: must be a duration with a unit, e.g. "10s" (ms, s, m, h)',
        'c.yaml:5:20 listeners.public.maxHeaderSize: must be a size with a unit, e.g. "16KiB" (B, KiB, MiB, GiB, KB, MB, GB)',
      ].join('\n'),
    );
  });

  it('reports the branch of a backend entry the value was meant for', () => {
    const text = minimal.replace(
      'backends: [http://127.0.0.1:9001]',
      'backends: [{weight: 2}, 5, {url: http://a, wieght: 2}]',
    );
    assert.equal(
      problemsOf(text),
      [
        'c.yaml:9:16 pools.echo.backends[0].url: is required',
        'c.yaml:9:29 pools.echo.backends[1]: must be a string or a mapping',
        'c.yaml:9:48 pools.echo.backends[2]: unknown key "wieght" (did you mean "weight"?)',
      ].join('\n'),
    );
  });

  it('reports an empty file, or one with only comments', () => {
    const empty = 'c.yaml: the file is empty; a configuration needs at least listeners, routes and pools';
    assert.equal(problemsOf(''), empty);
    assert.equal(problemsOf('# nothing here\n\n'), empty);
  });

  it('reports a document that is not a mapping', () => {
    assert.equal(problemsOf('just text'), 'c.yaml:1:1: must be a mapping (of listeners, routes, pools, ...)');
    assert.equal(problemsOf('null'), 'c.yaml:1:1: must be a mapping (of listeners, routes, pools, ...)');
  });

  it('reports YAML warnings such as unknown tags', () => {
    assert.equal(
      problemsOf(minimal.replace('pool: echo', 'pool: !custom echo')),
      'c.yaml:6:11 routes.echo.pool: unresolved tag: !custom',
    );
  });

  it('rejects keys that are collections instead of crashing', () => {
    assert.equal(
      problemsOf(`${minimal}? [a, b]\n: 1\n`),
      'c.yaml:10:3: keys must be plain names, not lists or mappings',
    );
  });

  it('accepts anchors and aliases', () => {
    const text = minimal.replace(
      '    port: 8080',
      '    address: 127.0.0.1\n    port: &port 8080\n  other:\n    address: 127.0.0.2\n    port: *port',
    );
    const config = parseConfigText(text, { file: 'c.yaml', baseDir: VALID, env: {} });
    assert.equal(config.listeners.other?.port, 8080);
  });

  it('reports alias bombs as a problem, not a crash', () => {
    const lines = ['a0: &a0 [x, x, x, x, x, x, x, x, x, x]'];
    for (let i = 1; i < 10; i++)
      lines.push(
        `a${i}: &a${i} [${Array(10)
          .fill(`*a${i - 1}`)
          .join(', ')}]`,
      );
    const text = `${minimal}${lines.join('\n')}\n`;
    assert.match(problemsOf(text), /^c\.yaml: cannot be read as data \(.*alias/im);
  });

  it('reports schema problems and does not run the cross-field checks until they are fixed', () => {
    const text = minimal.replace('pool: echo', 'pool: chta').replace('port: 8080', 'port: x');
    assert.equal(problemsOf(text), 'c.yaml:3:11 listeners.public.port: must be a number');
  });

  it('reports environment and cross-field problems together', () => {
    const text = minimal
      .replace('pool: echo', 'pool: chta')
      .replace('backends: [http://127.0.0.1:9001]', 'backends: ["http://${H}"]');
    assert.equal(
      problemsOf(text),
      [
        'c.yaml:6:11 routes.echo.pool: no pool named "chta" (pools: echo)',
        'c.yaml:9:16 pools.echo.backends[0]: environment variable H is not set',
      ].join('\n'),
    );
  });
});

describe('suggestKey', () => {
  it('suggests the closest key within an edit distance of 2', () => {
    assert.equal(suggestKey('prot', ['address', 'port', 'tls']), 'port');
    assert.equal(suggestKey('listner', ['log', 'listeners']), 'listeners');
    assert.equal(suggestKey('Port', ['port']), 'port');
    assert.equal(suggestKey('colour', ['hosts', 'path', 'pool']), undefined);
    assert.equal(suggestKey('x', []), undefined);
  });
});
