import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, it } from 'node:test';
import { createConfigSchema } from '../../../src/config/schema.ts';
import { caBundleProblem, checkSemantics, isAddressOrRange } from '../../../src/config/semantics.ts';

const TLS = resolve(import.meta.dirname, '../../fixtures/tls');

/** A schema-valid configuration: one listener, route and pool, with `extra` merged in at the top. */
function config(extra: Record<string, unknown> = {}) {
  return createConfigSchema({ baseDir: TLS, env: {} }).parse({
    listeners: { public: { port: 8080 } },
    routes: { echo: { pool: 'echo' } },
    pools: { echo: { backends: ['http://127.0.0.1:9001'] } },
    ...extra,
  });
}

function messages(extra: Record<string, unknown>): string[] {
  return checkSemantics(config(extra)).map((p) => `${p.path.join('.')}: ${p.message}`);
}

describe('checkSemantics', () => {
  it('finds nothing wrong in a consistent configuration', () => {
    assert.deepEqual(checkSemantics(config()), []);
  });

  it('reports a route to a missing pool, listing the pools', () => {
    assert.deepEqual(
      messages({
        routes: { chat: { pool: 'chta', path: '/chat' }, echo: { pool: 'echo' } },
        pools: { chat: { backends: ['http://a:1'] }, echo: { backends: ['http://b:1'] } },
      }),
      ['routes.chat.pool: no pool named "chta" (pools: chat, echo)'],
    );
    assert.deepEqual(messages({ pools: {} }), [
      'routes.echo.pool: no pool named "echo" (no pools are defined)',
    ]);
  });

  it('reports a backend listed twice in a pool, however its URL is spelled', () => {
    assert.deepEqual(
      messages({
        pools: {
          echo: { backends: ['http://127.0.0.1:9001', 'http://127.0.0.1:9002', 'HTTP://127.0.0.1:9001/'] },
        },
      }),
      [
        'pools.echo.backends.2: http://127.0.0.1:9001 is listed already (backends[0]); give it a weight instead',
      ],
    );
  });

  it('reports a claim sticky source on a pool that no route checks tokens for', () => {
    const sticky = {
      backends: ['http://127.0.0.1:9001'],
      sticky: { from: [{ claim: 'sub' }, 'clientAddress'] },
    };
    assert.deepEqual(messages({ pools: { echo: sticky } }), [
      'pools.echo.sticky.from.0: { claim: sub } needs a verified token, and no route to pool "echo" checks one (auth.keySet)',
    ]);
    const withTokens = {
      pools: { echo: sticky },
      keySets: { idp: { jwksUrl: 'https://idp.example.com/jwks.json' } },
      routes: { echo: { pool: 'echo', auth: { keySet: 'idp', algorithms: ['RS256'] } } },
    };
    assert.deepEqual(messages(withTokens), []);
  });

  it('reports an affinity cookie with SameSite=None that could never be Secure', () => {
    const pools = {
      echo: {
        backends: ['http://127.0.0.1:9001'],
        sticky: { from: ['affinityCookie'], cookie: { sameSite: 'None' } },
      },
    };
    assert.deepEqual(messages({ pools }), [
      'pools.echo.sticky.cookie.sameSite: None needs Secure, which is set only over https: no listener has tls and no forwarding.trustedProxies can say a request came over https, so browsers would drop the cookie',
    ]);
    assert.deepEqual(messages({ pools, forwarding: { trustedProxies: ['10.0.0.0/8'] } }), []);
  });

  it('does not take inherited properties for pools', () => {
    assert.equal(messages({ routes: { echo: { pool: 'constructor' } } }).length, 1);
  });

  it('reports trusted proxies that are neither addresses nor CIDR ranges', () => {
    const found = checkSemantics(
      config({ forwarding: { trustedProxies: ['10.0.0.0/8', '10.0.0.0/33', 'fd00::/8', 'host', '::1'] } }),
    );
    assert.deepEqual(
      found.map((p) => p.path),
      [
        ['forwarding', 'trustedProxies', 1],
        ['forwarding', 'trustedProxies', 3],
      ],
    );
  });

  it('reports listeners on the same port and overlapping addresses, at the later one', () => {
    assert.deepEqual(
      messages({
        listeners: {
          any: { port: 8080 },
          local: { address: '127.0.0.1', port: 8080 },
          v6: { address: '::1', port: 8081 },
          v6again: { address: '0:0:0:0:0:0:0:1', port: 8081 },
          name: { address: 'localhost', port: 8082 },
          loop: { address: '127.0.0.1', port: 8082 },
        },
      }),
      [
        'listeners.local.port: 127.0.0.1:8080 conflicts with listeners.any on 0.0.0.0:8080',
        'listeners.v6again.port: [::1]:8081 conflicts with listeners.v6 on [::1]:8081',
        'listeners.loop.port: 127.0.0.1:8082 conflicts with listeners.name on localhost:8082',
      ],
    );
  });

  it('lets different addresses share a port, and port 0 never conflicts', () => {
    assert.deepEqual(
      messages({
        listeners: {
          a: { address: '127.0.0.1', port: 8080 },
          b: { address: '127.0.0.2', port: 8080 },
          c: { port: 0 },
          d: { port: 0 },
        },
      }),
      [],
    );
  });

  it('reports a listener on the admin address and port, unless the admin server is off', () => {
    const listeners = { public: { address: '::', port: 8410 } };
    assert.deepEqual(messages({ listeners }), [
      'listeners.public.port: [::]:8410 conflicts with the admin server on 127.0.0.1:8410',
    ]);
    assert.deepEqual(messages({ listeners, admin: { enabled: false } }), []);
    assert.deepEqual(messages({ listeners, admin: { port: 0 } }), []);
  });

  it('accepts a certificate with its key and rejects a mismatched pair', () => {
    const good = { port: 8443, tls: { cert: 'server.pem', key: 'server-key.pem' } };
    assert.deepEqual(messages({ listeners: { public: good } }), []);
    const bad = { port: 8443, tls: { cert: 'server.pem', key: 'ca-key.pem' } };
    assert.deepEqual(messages({ listeners: { public: bad } }), [
      'listeners.public.tls: cert and key do not form a usable pair (key values mismatch)',
    ]);
    const swapped = { port: 8443, tls: { cert: 'server-key.pem', key: 'server.pem' } };
    assert.match(
      messages({ listeners: { public: swapped } })[0] ?? '',
      /^listeners\.public\.tls: cert and key/,
    );
  });

  it('checks a pool CA bundle', () => {
    const pool = (ca: string) => ({ pools: { echo: { backends: ['https://localhost:1'], tls: { ca } } } });
    assert.deepEqual(messages(pool('ca.pem')), []);
    assert.deepEqual(messages(pool('server-key.pem')), [
      'pools.echo.tls.ca: no PEM certificate in the file (expected "-----BEGIN CERTIFICATE-----")',
    ]);
  });

  it('reports routes that serve the same host and path', () => {
    assert.deepEqual(
      messages({
        routes: {
          a: { hosts: ['x.example.com', 'y.example.com'], path: '/ws', pool: 'echo' },
          b: { hosts: ['Y.example.com'], path: '/ws', pool: 'echo' },
          c: { hosts: ['y.example.com'], path: '/other', pool: 'echo' },
          d: { pool: 'echo' },
          e: { path: '/', pool: 'echo' },
          f: { hosts: ['*.example.com'], pool: 'echo' },
        },
      }),
      [
        'routes.b: host "y.example.com" with path "/ws" is already served by routes.a (ambiguous)',
        'routes.e: any host with path "/" is already served by routes.d (ambiguous)',
      ],
    );
  });
});

describe('checkSemantics: shutdown', () => {
  it('reports a close spread that reaches the drain deadline, with both durations', () => {
    assert.deepEqual(messages({ shutdown: { drainTimeout: '30s', closeSpread: '30s' } }), [
      'shutdown.closeSpread: 30s must be less than shutdown.drainTimeout (30s)',
    ]);
    assert.deepEqual(messages({ shutdown: { drainTimeout: '500ms' } }), [
      'shutdown.closeSpread: 1s must be less than shutdown.drainTimeout (500ms)',
    ]);
  });

  it('accepts a spread shorter than the deadline, or none', () => {
    assert.deepEqual(messages({ shutdown: { drainTimeout: '30s', closeSpread: '29.999s' } }), []);
    assert.deepEqual(messages({ shutdown: { drainTimeout: '1ms', closeSpread: '0s' } }), []);
  });

  it('counts the drain delay into the deadline', () => {
    assert.deepEqual(messages({ shutdown: { drainTimeout: '30s', drainDelay: '30s', closeSpread: '0s' } }), [
      'shutdown.drainDelay: 30s must be less than shutdown.drainTimeout (30s)',
    ]);
    assert.deepEqual(messages({ shutdown: { drainTimeout: '30s', drainDelay: '25s', closeSpread: '5s' } }), [
      'shutdown.closeSpread: 5s must be less than shutdown.drainTimeout (30s) minus shutdown.drainDelay (25s)',
    ]);
    assert.deepEqual(
      messages({ shutdown: { drainTimeout: '30s', drainDelay: '10s', closeSpread: '5s' } }),
      [],
    );
  });
});

describe('isAddressOrRange', () => {
  it('accepts addresses and ranges of both families', () => {
    for (const entry of [
      '10.0.0.1',
      '10.0.0.0/8',
      '0.0.0.0/0',
      '::1',
      'fd00::/8',
      '::/0',
      '192.168.1.0/24',
    ]) {
      assert.equal(isAddressOrRange(entry), true, entry);
    }
  });

  it('rejects everything else', () => {
    for (const entry of [
      '',
      'host',
      '10.0.0.0/33',
      '::/129',
      '10.0.0.0/',
      '10.0.0.0/-1',
      '10.0.0.0/8/8',
      '/8',
      '1.2.3',
    ]) {
      assert.equal(isAddressOrRange(entry), false, entry);
    }
  });
});

describe('caBundleProblem', () => {
  it('accepts bundles of several certificates', () => {
    const ca = readFileSync(resolve(TLS, 'ca.pem'));
    const server = readFileSync(resolve(TLS, 'server.pem'));
    assert.equal(caBundleProblem(Buffer.concat([ca, server])), undefined);
  });

  it('reports a certificate block that does not parse', () => {
    const broken = Buffer.from('-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n');
    assert.match(caBundleProblem(broken) ?? '', /^certificate 1 of 1 cannot be parsed/);
  });

  it('reports a block holding a second BEGIN before its END as one that does not parse', () => {
    const ca = readFileSync(resolve(TLS, 'ca.pem'), 'latin1');
    const doubled = Buffer.from(`-----BEGIN CERTIFICATE-----\n${ca}`, 'latin1');
    assert.match(caBundleProblem(doubled) ?? '', /^certificate 1 of 1 cannot be parsed/);
  });

  it('regression: a file of BEGIN lines without an END took time quadratic in its size', {
    // A scan takes milliseconds over 4 MiB; the lazy pattern it replaced took minutes.
    timeout: 20_000,
  }, () => {
    const begins = Buffer.from('-----BEGIN CERTIFICATE-----\n'.repeat(150_000));
    assert.match(caBundleProblem(begins) ?? '', /^no PEM certificate in the file/);
  });
});
