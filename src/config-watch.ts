/**
 * `reload.watch`: the configuration file is watched (its directory, so that a Kubernetes
 * ConfigMap update, which swaps a symlink, is seen; and a poll every `checkInterval` for what a
 * watch misses) and a reload is asked for when its bytes differ from the last ones seen. A save
 * that leaves the same bytes, or a poll, asks for nothing. `follow` starts, retunes or stops the
 * watch as each configuration in force says.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { Config } from './config/schema.ts';
import { type FileWatch, watchFiles } from './listener/file-watch.ts';
import type { Logger } from './observability/logger.ts';

/** Wait after a change is seen, for the rest of a burst of writes (an editor, a symlink swap). */
const DEBOUNCE_MS = 200;

async function digestOf(path: string): Promise<string | undefined> {
  try {
    return createHash('sha256')
      .update(await readFile(path))
      .digest('hex');
  } catch {
    return undefined; // between a removal and a rename: the next look sees the new file
  }
}

export class ConfigWatch {
  readonly #path: string;
  readonly #log: Logger;
  readonly #changed: () => void;
  #watch: FileWatch | undefined;
  #intervalMs = 0;
  #digest: Promise<string | undefined> | undefined;

  constructor(path: string, log: Logger, changed: () => void) {
    this.#path = path;
    this.#log = log;
    this.#changed = changed;
  }

  /** Watches, or not, as `settings` (those in force) say. */
  follow(settings: Config['reload']): void {
    if (!settings.watch) {
      this.close();
      return;
    }
    if (this.#watch !== undefined && this.#intervalMs === settings.checkInterval) return;
    this.#watch?.close();
    this.#intervalMs = settings.checkInterval;
    this.#digest ??= digestOf(this.#path);
    this.#watch = watchFiles([this.#path], {
      intervalMs: settings.checkInterval,
      debounceMs: DEBOUNCE_MS,
      onChange: () => void this.#look(),
      onWatchError: (directory, error) =>
        this.#log.info(
          { directory, err: error.message },
          'cannot watch the configuration directory; polling it',
        ),
    });
  }

  async #look(): Promise<void> {
    const before = await this.#digest;
    const digest = digestOf(this.#path);
    this.#digest = digest;
    const now = await digest;
    if (now === undefined || now === before) return;
    this.#log.info({ config: this.#path }, 'the configuration file changed; reloading');
    this.#changed();
  }

  close(): void {
    this.#watch?.close();
    this.#watch = undefined;
  }
}
