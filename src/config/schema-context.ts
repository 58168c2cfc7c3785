/**
 * What the schema needs from outside the YAML: where relative file paths resolve (the config
 * file's directory) and the environment secrets may be read from.
 */
import type { Environment } from './env.ts';

export interface SchemaContext {
  readonly baseDir: string;
  /** The variables a secret may be read from (`keySets.*.secretEnv`). */
  readonly env: Environment;
}
