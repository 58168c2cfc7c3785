/**
 * docs/errors.md and the code table must agree: every code has exactly one row with the same
 * phase, status, close code, source and level, and the doc names no code that does not exist.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { type Closes, CODES } from '../../../src/errors/codes.ts';

const doc = readFileSync(new URL('../../../docs/errors.md', import.meta.url), 'utf8');
const rows = new Map(
  doc
    .split('\n')
    .filter((line) => /^\|\s*`[A-Z_]+`\s*\|/.test(line))
    .map((line) => {
      const cells = line.split('|').map((cell) => cell.trim());
      return [cells[1]?.replaceAll('`', '') ?? '', cells.slice(2, 8)] as const;
    }),
);

test('every code in the table is documented with the same attributes', () => {
  for (const [code, info] of Object.entries(CODES)) {
    const row = rows.get(code);
    assert.ok(row, `docs/errors.md has a row for ${code}`);
    const closes: Closes = info.closes;
    const expected = [
      info.phase,
      info.status ? String(info.status) : '—',
      closes.client ? String(closes.client[0]) : '—',
      closes.backend ? String(closes.backend[0]) : '—',
      info.source,
      info.level,
    ];
    assert.deepEqual(row, expected, `docs/errors.md row for ${code}`);
  }
});

test('the doc names no code that the table lacks', () => {
  for (const code of rows.keys())
    assert.ok(code in CODES, `${code} in docs/errors.md exists in src/errors/codes.ts`);
});

test('statuses and close codes are consistent with the phases', () => {
  for (const [code, info] of Object.entries(CODES)) {
    if (info.phase === 'tunnel') assert.equal(info.status, 0, `${code}: a tunnel code has no HTTP status`);
    if (info.status !== 0)
      assert.ok(info.status >= 400 && info.status < 600, `${code}: status is an error status`);
    const closes: Closes = info.closes;
    for (const [side, frame] of Object.entries(closes)) {
      assert.ok(
        [1001, 1002, 1008, 1009, 1011, 1014].includes(frame[0]),
        `${code}: close code to the ${side}`,
      );
      assert.ok(Buffer.byteLength(frame[1]) <= 123, `${code}: the reason fits a close frame (RFC 6455 §5.5)`);
    }
    if (info.phase !== 'tunnel' && code !== 'INTERNAL_ERROR') {
      assert.deepEqual(closes, {}, `${code}: only tunnel codes (and the 1011 safety net) close tunnels`);
    }
  }
});
