/**
 * A first head collected over several reads: complete at its blank line with every byte kept in
 * order (however it is cut, a CRLF split across reads included), and handed to Node's parser at
 * the first byte or line that cannot belong to a plain upgrade, or past the size bound.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type HeadProgress, PartialHead } from '../../../src/listener/partial-head.ts';
import { readUpgradeHead } from '../../../src/listener/upgrade-head.ts';

const HEAD = 'GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n';

/** Feeds `pieces` and returns the progress after each. */
function feed(pieces: readonly string[], maxHeaderSize = 16_384): HeadProgress[] {
  const partial = new PartialHead(maxHeaderSize);
  return pieces.map((piece) => partial.add(Buffer.from(piece, 'latin1')));
}

describe('PartialHead', () => {
  it('completes at the blank line of a head sent a byte at a time, with the bytes in order', () => {
    const progress = feed([...`${HEAD}early`.slice(0, HEAD.length)]);
    assert.ok(progress.slice(0, -1).every((step) => step.kind === 'incomplete'));
    const last = progress.at(-1);
    assert.equal(last?.kind, 'complete');
    if (last?.kind !== 'complete') return;
    assert.equal(last.bytes.toString('latin1'), HEAD);
    assert.equal(readUpgradeHead(last.bytes, 16_384).kind, 'upgrade');
  });

  it('keeps the bytes after the head that came in the same read', () => {
    const progress = feed([HEAD.slice(0, 20), `${HEAD.slice(20)}\x81\x00`]);
    const last = progress.at(-1);
    assert.equal(last?.kind, 'complete');
    if (last?.kind === 'complete') assert.equal(last.bytes.toString('latin1'), `${HEAD}\x81\x00`);
  });

  it('finds a CRLF split between two reads', () => {
    const cut = HEAD.indexOf('\r\n') + 1;
    const progress = feed([HEAD.slice(0, cut), HEAD.slice(cut, -1), HEAD.slice(-1)]);
    assert.deepEqual(
      progress.map((step) => step.kind),
      ['incomplete', 'incomplete', 'complete'],
    );
  });

  for (const [what, pieces, at] of [
    ['a bare LF', ['GET / HTTP/1.1\n'], 0],
    ['a bare CR', ['GET / HTTP/1.1\r', 'X'], 1],
    ['a NUL byte', ['GET /a', '\x00'], 1],
    ['obs-text (Node reads it)', ['GET / HTTP/1.1\r\nX: \xe9'], 0],
    ['a method other than GET', ['GE', 'X'], 1],
    ['HTTP/1.0', ['GET / HTTP/1.0\r\n'], 0],
    ['a header line without a colon', ['GET / HTTP/1.1\r\n', 'Host a\r\n'], 1],
    ['a space before the colon', ['GET / HTTP/1.1\r\nHost : a\r\n'], 0],
    ['a folded line', ['GET / HTTP/1.1\r\nX: a\r\n', ' b\r\n'], 1],
  ] as const) {
    it(`hands the head to Node at ${what}`, () => {
      const progress = feed(pieces);
      assert.equal(progress[at]?.kind, 'other');
      assert.ok(progress.slice(0, at).every((step) => step.kind === 'incomplete'));
    });
  }

  it('hands a head to Node once it reaches maxHeaderSize without its end', () => {
    const progress = feed(['GET / HTTP/1.1\r\n', `X: ${'a'.repeat(1_000)}`, 'a'.repeat(100)], 1_100);
    assert.deepEqual(
      progress.map((step) => step.kind),
      ['incomplete', 'incomplete', 'other'],
    );
    const last = progress.at(-1);
    if (last?.kind === 'other') assert.equal(last.bytes.length, 16 + 1_003 + 100, 'every byte, for Node');
  });

  it('hands a head with more than 100 header lines to Node', () => {
    const lines = Array.from({ length: 101 }, (_, index) => `X-${index}: v\r\n`);
    const progress = feed(['GET / HTTP/1.1\r\n', ...lines]);
    assert.equal(progress.at(-1)?.kind, 'other');
    assert.ok(progress.slice(0, -1).every((step) => step.kind === 'incomplete'));
  });
});
