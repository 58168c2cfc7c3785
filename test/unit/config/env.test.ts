// biome-ignore-all lint/suspicious/noTemplateCurlyInString: "${NAME}" here is the configuration's reference syntax.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseDocument } from 'yaml';
import { ConfigError } from '../../../src/config/config-error.ts';
import { expandEnvInDocument, expandString, retypePlain } from '../../../src/config/env.ts';
import { parseConfigText } from '../../../src/config/load.ts';

const BASE = `listeners:
  public:
    port: 8080
routes:
  echo:
    pool: echo
pools:
  echo:
    backends: [http://127.0.0.1:9001]
`;

function load(text: string, env: Record<string, string | undefined>) {
  return parseConfigText(text, { file: 'env.yaml', baseDir: import.meta.dirname, env });
}

function problemsOf(text: string, env: Record<string, string | undefined>): string {
  try {
    load(text, env);
  } catch (error) {
    if (error instanceof ConfigError) return error.format();
    throw error;
  }
  assert.fail('expected a ConfigError');
}

describe('expandString', () => {
  const env = { HOST: 'example.com', PORT: '8080', EMPTY: '', NESTED: '${HOST}' };

  it('replaces references, several per string', () => {
    assert.equal(expandString('${HOST}', env).text, 'example.com');
    assert.equal(expandString('http://${HOST}:${PORT}/', env).text, 'http://example.com:8080/');
  });

  it('uses the default when the variable is unset or empty', () => {
    assert.equal(expandString('${MISSING:-fallback}', env).text, 'fallback');
    assert.equal(expandString('${EMPTY:-fallback}', env).text, 'fallback');
    assert.equal(expandString('${PORT:-1}', env).text, '8080');
    assert.equal(expandString('${MISSING:-}', env).text, '');
    assert.equal(expandString('${MISSING:-a:-b c}', env).text, 'a:-b c');
  });

  it('keeps an empty value without a default', () => {
    assert.deepEqual(expandString('x${EMPTY}y', env), { text: 'xy', problems: [], single: false });
  });

  it('turns $${ into a literal ${ and leaves other dollars alone', () => {
    assert.equal(expandString('$${HOST}', env).text, '${HOST}');
    assert.equal(expandString('a$${HOST}-${HOST}', env).text, 'a${HOST}-example.com');
    assert.equal(expandString('cost: $5, $$, $', env).text, 'cost: $5, $$, $');
  });

  it('does not expand values again', () => {
    assert.equal(expandString('${NESTED}', env).text, '${HOST}');
  });

  it('reports unset variables, invalid names and unterminated references', () => {
    assert.deepEqual(expandString('${MISSING}', env).problems, ['environment variable MISSING is not set']);
    assert.match(expandString('${1ABC}', env).problems[0] ?? '', /"\$\{1ABC\}" is not a valid reference/);
    assert.match(expandString('${}', env).problems[0] ?? '', /is not a valid reference/);
    assert.match(expandString('${A-b}', env).problems[0] ?? '', /is not a valid reference/);
    assert.match(expandString('x ${HOST', env).problems[0] ?? '', /unterminated reference "\$\{HOST"/);
    assert.match(expandString('${A:-${B}}', env).problems[0] ?? '', /cannot contain another reference/);
    const two = expandString('${X} ${Y}', env);
    assert.equal(two.problems.length, 2);
  });

  it('tells whether the string is a single reference', () => {
    assert.equal(expandString('${PORT}', env).single, true);
    assert.equal(expandString('${PORT:-80}', env).single, true);
    assert.equal(expandString('${PORT}x', env).single, false);
    assert.equal(expandString('x${PORT}', env).single, false);
    assert.equal(expandString('${HOST}${PORT}', env).single, false);
  });
});

describe('retypePlain', () => {
  it('types text by the YAML core schema', () => {
    assert.equal(retypePlain('8080'), 8080);
    assert.equal(retypePlain('0x10'), 16);
    assert.equal(retypePlain('1.5'), 1.5);
    assert.equal(retypePlain('true'), true);
    assert.equal(retypePlain('False'), false);
    assert.equal(retypePlain('null'), null);
    assert.equal(retypePlain(''), null);
  });

  it('keeps text that is not a single plain scalar as a string', () => {
    for (const text of [
      'abc',
      'yes',
      'a #b',
      '[1, 2]',
      'a: b',
      '- a',
      '*x',
      '&a 1',
      '!!str 1',
      '"q"',
      '1_000',
    ]) {
      assert.equal(retypePlain(text), text, text);
    }
  });
});

describe('expandEnvInDocument', () => {
  it('expands values but not keys, in place', () => {
    const doc = parseDocument('${K}: ${V}\nlist: [a, "${V}"]\n');
    assert.deepEqual(expandEnvInDocument(doc, { K: 'key', V: 'value' }), []);
    assert.deepEqual(doc.toJS(), { '${K}': 'value', list: ['a', 'value'] });
  });

  it('reports each unresolved reference at its scalar with its path', () => {
    const doc = parseDocument('a:\n  b: [x, "${NOPE}"]\n');
    assert.deepEqual(expandEnvInDocument(doc, {}), [
      { offset: 12, path: ['a', 'b', 1], message: 'environment variable NOPE is not set' },
    ]);
  });
});

describe('environment references in a configuration', () => {
  it('re-types an unquoted single reference: numbers and booleans', () => {
    const text = BASE.replace('port: 8080', 'port: ${PORT}').concat(
      '    preserveHost: ${PRESERVE}\n    tls:\n      verify: ${VERIFY}\n',
    );
    const config = load(text, { PORT: '8081', PRESERVE: 'false', VERIFY: 'true' });
    assert.equal(config.listeners.public?.port, 8081);
    assert.equal(config.pools.echo?.preserveHost, false);
    assert.equal(config.pools.echo?.tls.verify, true);
  });

  it('keeps quoted references and references inside text as strings', () => {
    const quoted = BASE.replace('port: 8080', 'port: "${PORT}"');
    assert.equal(
      problemsOf(quoted, { PORT: '8081' }),
      'env.yaml:3:11 listeners.public.port: must be a number',
    );
    const single = BASE.replace('port: 8080', "port: '${PORT}'");
    assert.equal(
      problemsOf(single, { PORT: '8081' }),
      'env.yaml:3:11 listeners.public.port: must be a number',
    );
    const inText = BASE.replace('    pool: echo', '    pool: echo\n    path: /${PREFIX}/ws');
    assert.equal(load(inText, { PREFIX: '42' }).routes.echo?.path, '/42/ws');
  });

  it('keeps a re-typed value that is not a number where a string is expected as a string', () => {
    const text = BASE.replace('    pool: echo', '    pool: ${POOL}');
    assert.equal(load(text, { POOL: 'echo' }).routes.echo?.pool, 'echo');
  });

  it('uses defaults, and re-types them too', () => {
    const text = BASE.replace('port: 8080', 'port: ${PORT:-9000}');
    assert.equal(load(text, {}).listeners.public?.port, 9000);
    assert.equal(load(text, { PORT: '' }).listeners.public?.port, 9000);
  });

  it('turns $${ into a literal ${', () => {
    // A replacer function: in a replacement string, "$$" would itself mean "$".
    const text = BASE.replace('    pool: echo', () => '    pool: echo\n    path: /$${literal}');
    assert.equal(load(text, {}).routes.echo?.path, '/${literal}');
  });

  it('reports an unset variable at its value, once, without a follow-up type error', () => {
    const text = BASE.replace('port: 8080', 'port: ${WSGATE_PORT}').replace(
      'backends: [http://127.0.0.1:9001]',
      'backends:\n      - "http://${BACKEND}:9001"',
    );
    assert.equal(
      problemsOf(text, {}),
      [
        'env.yaml:3:11 listeners.public.port: environment variable WSGATE_PORT is not set',
        'env.yaml:10:9 pools.echo.backends[0]: environment variable BACKEND is not set',
      ].join('\n'),
    );
  });

  it('expands references inside anchored values once for every alias', () => {
    const text = `${BASE}forwarding:\n  trustedProxies: [&proxy "\${PROXY}", *proxy]\n`;
    assert.deepEqual(load(text, { PROXY: '10.0.0.1' }).forwarding.trustedProxies, ['10.0.0.1', '10.0.0.1']);
  });
});
