/**
 * A PEM file named in the configuration (a certificate, a key, a CA bundle), read when the file is
 * loaded, relative to the configuration file, so that an unreadable one is reported at its line
 * like any other mistake. The path is kept too: listeners read their certificates again when the
 * files change.
 */
import { resolve } from 'node:path';
import { z } from 'zod';
import { readKeyFileSync } from '../keys/key-files.ts';
import type { SchemaContext } from './schema-context.ts';

/** A PEM file, read at load time. */
export interface PemFile {
  readonly path: string;
  readonly pem: Buffer;
}

/** The bytes of the file at `path` (relative to the config file), or an issue at its line. */
export function readConfigFile(
  context: SchemaContext,
  path: string,
  ctx: z.RefinementCtx,
): Buffer | undefined {
  const absolute = resolve(context.baseDir, path);
  try {
    return readKeyFileSync(absolute);
  } catch (error) {
    const reason = error instanceof Error && 'code' in error ? String(error.code) : 'unreadable';
    ctx.addIssue({ code: 'custom', message: `cannot read ${absolute} (${reason})` });
    return undefined;
  }
}

/** A path in the configuration that comes out as the file's absolute path and content. */
export function pemFile(context: SchemaContext) {
  return z.string().transform((path, ctx): PemFile => {
    const pem = readConfigFile(context, path, ctx);
    return pem === undefined ? z.NEVER : { path: resolve(context.baseDir, path), pem };
  });
}

/** A path in the configuration that comes out as the file's text, without a trailing newline. */
export function textFile(context: SchemaContext) {
  return z.string().transform((path, ctx): string => {
    const content = readConfigFile(context, path, ctx);
    if (content === undefined) return z.NEVER;
    // A trailing newline is how editors and `kubectl create secret` leave files.
    const text = content.toString('utf8').replace(/\r?\n$/, '');
    if (text === '') {
      ctx.addIssue({ code: 'custom', message: `${resolve(context.baseDir, path)} is empty` });
      return z.NEVER;
    }
    return text;
  });
}
