/**
 * Reading the files keys and certificates come from, safely: only regular files (a FIFO, a device
 * such as /dev/zero or a directory would block a read forever or never end), at most 1 MiB, and
 * opened without blocking. The configuration loader reads them at start, the listener again when
 * they change on disk, so a file refused at a reload is one that would have been refused at start.
 */
import { closeSync, constants, fstatSync, openSync, readFileSync } from 'node:fs';
import { open } from 'node:fs/promises';

/** Largest key, certificate chain or JWKS file read. */
export const MAX_KEY_FILE_BYTES = 1024 * 1024;

/** Opening a FIFO for reading waits for a writer, unless it does not block. */
const FLAGS = constants.O_RDONLY | constants.O_NONBLOCK;

/** An error with a `code`, like the platform's own (ENOENT, EISDIR, ...). */
function refusal(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}

function checkStat(stat: { isFile(): boolean; isDirectory(): boolean; size: number }, path: string): void {
  if (stat.isDirectory()) throw refusal('EISDIR', `${path} is a directory`);
  if (!stat.isFile()) throw refusal('ENOTREGULAR', `${path} is not a regular file (a FIFO or a device)`);
  if (stat.size > MAX_KEY_FILE_BYTES) throw refusal('ETOOBIG', `${path} is over ${MAX_KEY_FILE_BYTES} bytes`);
}

/** The bytes of the regular file at `path`; throws an error with a `code` otherwise. */
export function readKeyFileSync(path: string): Buffer {
  const fd = openSync(path, FLAGS);
  try {
    checkStat(fstatSync(fd), path);
    return readFileSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** The bytes of the regular file at `path`, read asynchronously; throws as readKeyFileSync. */
export async function readKeyFile(path: string): Promise<Buffer> {
  const handle = await open(path, FLAGS);
  try {
    checkStat(await handle.stat(), path);
    return await handle.readFile();
  } finally {
    await handle.close();
  }
}
