/**
 * Key and certificate files are read only when they are regular files of at most 1 MiB: a FIFO
 * (which would block the read forever), a device such as /dev/zero (which never ends), a
 * directory or an oversized file is refused with a code, at load and at reload alike.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { MAX_KEY_FILE_BYTES, readKeyFile, readKeyFileSync } from '../../../src/keys/key-files.ts';

const DIR = mkdtempSync(join(tmpdir(), 'wsgate-key-files-'));
after(() => rmSync(DIR, { recursive: true, force: true }));

function codeOf(read: () => unknown): string | undefined {
  try {
    read();
  } catch (error) {
    return (error as { code?: string }).code;
  }
  return undefined;
}

test('a regular file is read; a directory, a device and an oversized file are refused', async () => {
  const file = join(DIR, 'key.pem');
  writeFileSync(file, 'pem bytes');
  assert.equal(readKeyFileSync(file).toString(), 'pem bytes');
  assert.equal((await readKeyFile(file)).toString(), 'pem bytes');
  assert.equal(
    codeOf(() => readKeyFileSync(DIR)),
    'EISDIR',
  );
  if (existsSync('/dev/zero'))
    assert.equal(
      codeOf(() => readKeyFileSync('/dev/zero')),
      'ENOTREGULAR',
    );
  const big = join(DIR, 'big.pem');
  writeFileSync(big, Buffer.alloc(MAX_KEY_FILE_BYTES + 1));
  assert.equal(
    codeOf(() => readKeyFileSync(big)),
    'ETOOBIG',
  );
  await assert.rejects(readKeyFile(big), { code: 'ETOOBIG' });
  assert.equal(
    codeOf(() => readKeyFileSync(join(DIR, 'missing.pem'))),
    'ENOENT',
  );
});

test('regression: a FIFO is refused at once instead of blocking the read forever', {
  skip: spawnSync('mkfifo', ['--version']).error ? 'mkfifo is not installed' : false,
}, async () => {
  const fifo = join(DIR, 'tls.crt');
  assert.equal(spawnSync('mkfifo', [fifo]).status, 0);
  assert.equal(
    codeOf(() => readKeyFileSync(fifo)),
    'ENOTREGULAR',
  );
  await assert.rejects(readKeyFile(fifo), { code: 'ENOTREGULAR' });
});
