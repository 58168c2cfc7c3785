/**
 * The package's own facts, read from package.json so that they are stated once: the version
 * (`--version`, metrics) and the Node.js versions it runs on (`engines.node`, which npm checks
 * and the command's version guard enforces). Kept to plain code that any Node.js can load, since
 * the guard runs it before refusing an old one.
 */
import { readFileSync } from 'node:fs';

export interface PackageInfo {
  readonly version: string;
  /** `engines.node` as written, e.g. ">=22.18". */
  readonly nodeRange: string;
  /** The lowest Node.js version that range allows, as [major, minor, patch]. */
  readonly minimumNode: readonly [number, number, number];
}

function field(object: unknown, name: string): unknown {
  return typeof object === 'object' && object !== null
    ? (object as Record<string, unknown>)[name]
    : undefined;
}

/** Reads package.json next to src/ or dist/. */
export function readPackageInfo(): PackageInfo {
  const parsed: unknown = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
  const version = field(parsed, 'version');
  const range = field(field(parsed, 'engines'), 'node');
  const nodeRange = typeof range === 'string' ? range : '>=0';
  const [major = 0, minor = 0, patch = 0] = (/>=\s*(\d+(?:\.\d+){0,2})/.exec(nodeRange)?.[1] ?? '0')
    .split('.')
    .map(Number);
  return {
    version: typeof version === 'string' ? version : '0.0.0',
    nodeRange,
    minimumNode: [major, minor, patch],
  };
}

/** The package version. */
export function packageVersion(): string {
  return readPackageInfo().version;
}

/** Whether `version` ("22.18.0", as in process.versions.node) is at least `minimum`. */
export function satisfiesMinimum(version: string, minimum: readonly [number, number, number]): boolean {
  const parts = version.split('.').map(Number);
  for (let i = 0; i < 3; i++) {
    const have = parts[i] ?? 0;
    const need = minimum[i] ?? 0;
    if (have !== need) return have > need;
  }
  return true;
}
