import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, type ConfigProblem, formatPath } from '../../../src/config/config-error.ts';

function problem(line: number, column: number, path: string, message: string): ConfigProblem {
  return { file: 'config.yaml', line, column, path, message };
}

describe('formatPath', () => {
  it('joins keys with dots and writes indices in brackets', () => {
    assert.equal(formatPath(['pools', 'chat', 'backends', 2, 'url']), 'pools.chat.backends[2].url');
    assert.equal(formatPath([0, 'a']), '[0].a');
    assert.equal(formatPath([]), '');
  });
});

describe('ConfigError', () => {
  it('formats one line per problem, sorted by line then column', () => {
    const error = new ConfigError('config.yaml', [
      problem(14, 7, 'pools.chat.backends[2]', 'must be http: or https:'),
      problem(3, 9, 'listeners.public.port', 'must be a number'),
      problem(3, 2, 'listeners.public', 'unknown key "prot"'),
    ]);
    assert.equal(
      error.format(),
      [
        'config.yaml:3:2 listeners.public: unknown key "prot"',
        'config.yaml:3:9 listeners.public.port: must be a number',
        'config.yaml:14:7 pools.chat.backends[2]: must be http: or https:',
      ].join('\n'),
    );
    assert.deepEqual(
      error.problems.map((p) => p.line),
      [3, 3, 14],
    );
  });

  it('writes problems without a position as "file: path: message", first', () => {
    const error = new ConfigError('config.yaml', [
      problem(2, 1, '', 'duplicate key'),
      problem(0, 0, 'routes', 'is required'),
      problem(0, 0, '', 'the file is empty'),
    ]);
    assert.equal(
      error.format(),
      [
        'config.yaml: routes: is required',
        'config.yaml: the file is empty',
        'config.yaml:2:1: duplicate key',
      ].join('\n'),
    );
  });

  it('has a message with the file, the count and every problem', () => {
    const one = new ConfigError('a.yaml', [{ ...problem(1, 1, 'log', 'x'), file: 'a.yaml' }]);
    assert.equal(one.message, 'invalid configuration in a.yaml (1 problem)\na.yaml:1:1 log: x');
    const two = new ConfigError('config.yaml', [problem(1, 1, 'a', 'x'), problem(2, 1, 'b', 'y')]);
    assert.match(two.message, /^invalid configuration in config\.yaml \(2 problems\)\n/);
    assert.equal(two.message.split('\n').length, 3);
    assert.equal(two.name, 'ConfigError');
    assert.ok(two instanceof Error);
  });

  it('keeps its problem list immutable', () => {
    const error = new ConfigError('config.yaml', [problem(1, 1, 'a', 'x')]);
    assert.ok(Object.isFrozen(error.problems));
  });
});
