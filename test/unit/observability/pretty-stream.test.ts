/**
 * The pretty log format renders one readable line per record and never lets a control character
 * from a client (C0, DEL, C1 such as NEL or CSI, line separators) reach a terminal raw.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { renderPrettyLine } from '../../../src/observability/pretty-stream.ts';

test('a record becomes time, level, message and key=value fields', () => {
  const line = renderPrettyLine(
    JSON.stringify({
      level: 'info',
      time: '2026-12-02T12:00:01.234Z',
      pid: 1,
      msg: 'hello',
      route: 'chat',
      n: 3,
    }),
  );
  assert.equal(line, '12:00:01.234 INFO  hello route=chat n=3\n');
});

test('regression: C1 controls and line separators in client values are escaped', () => {
  const hostile = `agent\u0085next\u009b31m\u2028x\u0007`;
  const line = renderPrettyLine(
    JSON.stringify({ level: 'info', time: '', msg: `m\u009bx`, userAgent: hostile }),
  );
  const raw = [...line.slice(0, -1)].filter((char) => {
    const code = char.charCodeAt(0);
    return code < 0x20 || (code >= 0x7f && code <= 0x9f) || code === 0x2028 || code === 0x2029;
  });
  assert.deepEqual(raw, [], `no raw control character in ${JSON.stringify(line)}`);
  assert.match(line, /userAgent="agent\\u0085next\\u009b31m\\u2028x\\u0007"/);
  assert.equal(line.split('\n').length, 2, 'one line');
});

test('a line that is not JSON passes unchanged', () => {
  assert.equal(renderPrettyLine('plain text\n'), 'plain text\n');
});
