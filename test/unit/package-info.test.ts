/**
 * The Node.js requirement is stated once, in package.json's `engines.node`, and the command's
 * version guard reads it from there: the range must be one the guard understands, and the
 * comparison must order versions the way Node numbers them.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { readPackageInfo, satisfiesMinimum } from '../../src/package-info.ts';

test('engines.node is a ">=" range the version guard reads', () => {
  const info = readPackageInfo();
  assert.match(info.nodeRange, /^>=\d+\.\d+(\.\d+)?$/, 'a plain minimum, as the guard parses it');
  assert.ok(info.minimumNode[0] >= 22, `the minimum is Node 22 or newer (${info.minimumNode.join('.')})`);
  assert.ok(satisfiesMinimum(process.versions.node, info.minimumNode), 'the Node running the tests passes');
});

test('versions are compared part by part', () => {
  const cases: [string, [number, number, number], boolean][] = [
    ['22.18.0', [22, 18, 0], true],
    ['22.17.9', [22, 18, 0], false],
    ['22.100.0', [22, 18, 0], true],
    ['23.0.0', [22, 18, 0], true],
    ['20.20.2', [22, 18, 0], false],
  ];
  for (const [version, minimum, expected] of cases) {
    assert.equal(satisfiesMinimum(version, minimum), expected, `${version} against ${minimum.join('.')}`);
  }
});
