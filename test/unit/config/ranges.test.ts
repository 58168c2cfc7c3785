/**
 * Durations and sizes out of the range the gateway can use: zero timeouts (which Node.js reads as
 * "no timeout"), delays longer than a timer can wait, and request head limits that are too small
 * or large. Every duration field is covered, found from the JSON Schema so that new ones are too,
 * and so is `off`: accepted exactly where a limit is optional, refused where a duration is needed.
 */
import assert from 'node:assert/strict';
import { resolve } from 'node:path';
import { describe, it } from 'node:test';
import { configJsonSchema, DURATION_PATTERN } from '../../../scripts/config-json-schema.ts';
import { createConfigSchema } from '../../../src/config/schema.ts';
import { MAX_DURATION_MS } from '../../../src/config/units.ts';

const FIXTURE_CERT = resolve(import.meta.dirname, '../../fixtures/tls/server.pem');
const FIXTURE_KEY = resolve(import.meta.dirname, '../../fixtures/tls/server-key.pem');

/**
 * Where each duration field sits in a configuration with one listener `public`, one route `echo`
 * and one pool `echo`.
 */
const DURATIONS = [
  ['listeners', 'public', 'handshakeTimeout'],
  ['listeners', 'public', 'requestTimeout'],
  ['listeners', 'public', 'keepAliveTimeout'],
  ['listeners', 'public', 'tls', 'reloadCheckInterval'],
  ['pools', 'echo', 'connectTimeout'],
  ['pools', 'echo', 'handshakeTimeout'],
  ['pools', 'echo', 'responseTimeout'],
  ['pools', 'echo', 'discovery', 'interval'],
  ['pools', 'echo', 'discovery', 'timeout'],
  ['pools', 'echo', 'drainTimeout'],
  ['pools', 'echo', 'slowStart'],
  ['tunnel', 'closeTimeout'],
  ['tunnel', 'sendTimeout'],
  ['shutdown', 'drainDelay'],
  ['shutdown', 'drainTimeout'],
  ['shutdown', 'closeSpread'],
  ['reload', 'checkInterval'],
  ['websocket', 'idleTimeout'],
  ['websocket', 'maxLifetime'],
  ['websocket', 'keepalive', 'client'],
  ['websocket', 'keepalive', 'backend'],
  ['websocket', 'keepalive', 'timeout'],
  ['routes', 'echo', 'websocket', 'idleTimeout'],
  ['routes', 'echo', 'websocket', 'maxLifetime'],
  ['routes', 'echo', 'websocket', 'keepalive', 'client'],
  ['routes', 'echo', 'websocket', 'keepalive', 'backend'],
  ['routes', 'echo', 'websocket', 'keepalive', 'timeout'],
  ['keySets', 'idp', 'fetchTimeout'],
  ['keySets', 'idp', 'refreshInterval'],
  ['keySets', 'idp', 'refreshCooldown'],
  ['auth', 'clockTolerance'],
  ['auth', 'expiry', 'grace'],
  ['routes', 'echo', 'auth', 'clockTolerance'],
  ['routes', 'echo', 'auth', 'expiry', 'grace'],
  ['pools', 'echo', 'sticky', 'cookie', 'maxAge'],
  ['pools', 'echo', 'health', 'active', 'interval'],
  ['pools', 'echo', 'health', 'active', 'timeout'],
  ['pools', 'echo', 'health', 'passive', 'ejectFor'],
] as const;

/** The durations that may be 0s: nothing to wait for, or no slack given. */
const ZERO_ALLOWED = [
  'shutdown.closeSpread',
  'shutdown.drainDelay',
  'auth.clockTolerance',
  'auth.expiry.grace',
];

/**
 * The duration fields that also accept `off` (the limit is not applied), top-level and in a
 * route's `websocket` block alike; `keepalive.timeout` only matters while pinging, so it has none.
 */
const OFF_ALLOWED = [
  ...['idleTimeout', 'maxLifetime', 'keepalive.client', 'keepalive.backend'].map(
    (field) => `websocket.${field}`,
  ),
  'sticky.cookie.maxAge',
  'slowStart',
];

function offAllowed(field: string): boolean {
  return OFF_ALLOWED.includes(field.replace(/^(routes|pools)\.[^.]+\./, ''));
}

/** The pattern of a duration field that also takes `off`, as the JSON Schema writes it. */
const DURATION_OR_OFF_PATTERN = `^\\s*(off|${DURATION_PATTERN.slice('^\\s*'.length, -'\\s*$'.length)})\\s*$`;

const NOT_A_DURATION = 'is not a duration (use e.g. "500ms", "30s", "5m", "1h")';

type Path = readonly string[];

/**
 * Field paths of the JSON Schema whose values are durations (`<name>` for names), with `pattern`
 * (DURATION_PATTERN, or DURATION_OR_OFF_PATTERN for those that also take `off`).
 */
function durationPaths(node: unknown, pattern: string, prefix: Path = []): string[] {
  if (typeof node !== 'object' || node === null) return [];
  const schema = node as Record<string, unknown>;
  if (schema.pattern === pattern) return [prefix.join('.')];
  // A field that also accepts ${ENV} references holds the duration pattern as one alternative.
  const alternatives = Array.isArray(schema.anyOf) ? schema.anyOf : [];
  if (alternatives.some((option) => (option as Record<string, unknown> | null)?.pattern === pattern)) {
    return [prefix.join('.')];
  }
  const paths: string[] = [];
  if (typeof schema.properties === 'object' && schema.properties !== null) {
    for (const [key, child] of Object.entries(schema.properties))
      paths.push(...durationPaths(child, pattern, [...prefix, key]));
  }
  if (typeof schema.additionalProperties === 'object') {
    paths.push(...durationPaths(schema.additionalProperties, pattern, [...prefix, '<name>']));
  }
  return paths;
}

/** A configuration with `value` at `path`, on top of one listener, route and pool. */
function withValue(path: Path, value: string): Record<string, unknown> {
  const input: Record<string, unknown> = {
    listeners: { public: { port: 8080 } },
    routes: { echo: { pool: 'echo' } },
    pools: { echo: { backends: ['http://127.0.0.1:9001'], sticky: { from: ['affinityCookie'] } } },
    // The JWKS options are checked only beside a JWKS URL.
    keySets: { idp: { jwksUrl: 'https://idp.example.com/jwks.json' } },
  };
  // A listener's tls block needs its certificate and key beside the field under test.
  if (path[0] === 'listeners' && path[2] === 'tls') {
    input.listeners = { public: { port: 8080, tls: { cert: FIXTURE_CERT, key: FIXTURE_KEY } } };
  }
  let node = input;
  for (const key of path.slice(0, -1)) {
    node[key] ??= {};
    node = node[key] as Record<string, unknown>;
  }
  node[path[path.length - 1] ?? ''] = value;
  return input;
}

/** The value at `path` of a parsed configuration. */
function valueAt(config: unknown, path: Path): unknown {
  let node = config;
  for (const key of path) node = (node as Record<string, unknown> | undefined)?.[key];
  return node;
}

/** The problems of `input`, as `path: message`; empty when it is schema-valid. */
function problems(input: Record<string, unknown>): string[] {
  const result = createConfigSchema({ baseDir: '.', env: {} }).safeParse(input);
  return result.success
    ? []
    : result.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`);
}

describe('duration ranges', () => {
  it('covers every duration field, and knows which take off', () => {
    const schema = configJsonSchema();
    const named = DURATIONS.map((path) =>
      path.join('.').replace(/^(listeners|pools|routes|keySets)\.\w+/, '$1.<name>'),
    );
    const found = [
      ...durationPaths(schema, DURATION_PATTERN),
      ...durationPaths(schema, DURATION_OR_OFF_PATTERN),
    ];
    assert.deepEqual(found.sort(), [...named].sort());
    assert.deepEqual(durationPaths(schema, DURATION_OR_OFF_PATTERN).sort(), named.filter(offAllowed).sort());
  });

  for (const path of DURATIONS) {
    const field = path.join('.');
    const zeroAllowed = ZERO_ALLOWED.includes(field.replace(/^routes\.[^.]+\./, ''));
    const off = offAllowed(field);

    if (off) {
      it(`${field}: may be off`, () => {
        for (const text of ['off', ' off ']) {
          assert.deepEqual(problems(withValue(path, text)), [], `${field}: ${JSON.stringify(text)}`);
          const config = createConfigSchema({ baseDir: '.', env: {} }).parse(withValue(path, text));
          assert.equal(valueAt(config, path), 'off', `${field}: ${JSON.stringify(text)}`);
        }
        assert.equal(
          valueAt(createConfigSchema({ baseDir: '.', env: {} }).parse(withValue(path, '1.5s')), path),
          1_500,
        );
        for (const text of ['OFF', 'none', 'false']) {
          assert.deepEqual(
            problems(withValue(path, text)),
            [`${field}: "${text}" ${NOT_A_DURATION}`],
            `${field}: ${text}`,
          );
        }
      });
    } else {
      it(`${field}: may not be off`, () => {
        assert.deepEqual(problems(withValue(path, 'off')), [`${field}: "off" ${NOT_A_DURATION}`]);
      });
    }

    it(`${field}: ${zeroAllowed ? 'may be 0s' : 'must be more than 0s'}`, () => {
      const zero = problems(withValue(path, '0s'));
      assert.deepEqual(zero, zeroAllowed ? [] : [`${field}: must be more than 0s`], `${field}: 0s`);
      assert.deepEqual(problems(withValue(path, '1ms')), [], `${field}: 1ms`);
    });

    it(`${field}: must be at most 596h`, () => {
      assert.deepEqual(problems(withValue(path, '596h')), [], `${field}: 596h`);
      for (const text of ['597h', '596.5h', `${2 ** 31}ms`, '100000h']) {
        assert.deepEqual(
          problems(withValue(path, text)),
          [`${field}: must be at most 596h (about 24.8 days)`],
          `${field}: ${text}`,
        );
      }
    });
  }

  it('explains a duration that rounds to zero milliseconds', () => {
    assert.deepEqual(problems(withValue(['tunnel', 'closeTimeout'], '0.4ms')), [
      'tunnel.closeTimeout: must be at least 1ms (durations are whole milliseconds)',
    ]);
    assert.deepEqual(problems(withValue(['tunnel', 'closeTimeout'], '0.000m')), [
      'tunnel.closeTimeout: must be more than 0s',
    ]);
    assert.deepEqual(problems(withValue(['shutdown', 'closeSpread'], '0.4ms')), []);
  });

  it('never yields a delay a timer cannot wait for', () => {
    const config = createConfigSchema({ baseDir: '.', env: {} }).parse(
      withValue(['shutdown', 'drainTimeout'], '596h'),
    );
    assert.equal(config.shutdown.drainTimeout, MAX_DURATION_MS);
    assert.ok(config.shutdown.drainTimeout <= 2 ** 31 - 1);
  });
});

describe('maxHeaderSize range', () => {
  const path = ['listeners', 'public', 'maxHeaderSize'];

  it('accepts 1KiB to 1MiB', () => {
    for (const text of ['1KiB', '1024B', '16KiB', '1MiB', '1048576B', '1MB']) {
      assert.deepEqual(problems(withValue(path, text)), [], text);
    }
  });

  it('rejects smaller and larger heads', () => {
    for (const text of ['0B', '1023B', '1KB']) {
      assert.deepEqual(problems(withValue(path, text)), [`${path.join('.')}: must be at least 1KiB`], text);
    }
    for (const text of ['1048577B', '1.5MiB', '1GiB']) {
      assert.deepEqual(problems(withValue(path, text)), [`${path.join('.')}: must be at most 1MiB`], text);
    }
  });
});
