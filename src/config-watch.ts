/**
 * `reload.watch`: the configuration file is watched (its directory, so that a Kubernetes
 * ConfigMap update, which swaps a symlink, is seen; and a poll every `checkInterval` for what a
 * watch misses) and a reload is asked for when its bytes differ from those of the configuration
 * in force. A save that leaves the same bytes, or a poll, asks for nothing; a change made between
 * the load and the start of the watch is seen when the watch starts. `follow` starts, retunes or
 * stops the watch as each configuration in force says.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { Config } from './config/schema.ts';
import { type FileWatch, watchFiles } from './listener/file-watch.ts';
import type { Logger } from './observability/logger.ts';

/** Wait after a change is seen, for the rest of a burst of writes (an editor, a symlink swap). */
const DEBOUNCE_MS = 200;

const digest = (bytes: string | Buffer): string => createHash('sha256').update(bytes).digest('hex');

async function digestOf(path: string): Promise<string | undefined> {
  try {
    return digest(await readFile(path));
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
  /** The digest of the bytes last seen: those of the configuration in force, or newer. */
  #digest: Promise<string | undefined>;
  #looks = 0;

  /** `loaded`: the text the configuration in force was read from (a change since is a change). */
  constructor(path: string, log: Logger, changed: () => void, loaded: string) {
    this.#path = path;
    this.#log = log;
    this.#changed = changed;
    this.#digest = Promise.resolve(digest(loaded));
  }

  /** A reload read `text` from the file: those bytes are not a change to report again. */
  seen(text: string): void {
    this.#digest = Promise.resolve(digest(text));
  }

  /** Watches, or not, as `settings` (those in force) say. */
  follow(settings: Config['reload']): void {
    if (!settings.watch) {
      this.close();
      return;
    }
    if (this.#watch !== undefined && this.#intervalMs === settings.checkInterval) return;
    const starting = this.#watch === undefined;
    this.#watch?.close();
    this.#intervalMs = settings.checkInterval;
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
    // What changed between the load and now, before anything watched.
    if (starting) void this.#look();
  }

  async #look(): Promise<void> {
    const before = await this.#digest;
    const current = digestOf(this.#path);
    this.#digest = current;
    const now = await current;
    this.#looks++;
    if (now === undefined || now === before) {
      this.#log.debug({ config: this.#path }, 'the configuration file is unchanged');
      return;
    }
    this.#log.info({ config: this.#path }, 'the configuration file changed; reloading');
    this.#changed();
  }

  /** Looks at the file taken so far (each compares its bytes with the last seen). */
  get looks(): number {
    return this.#looks;
  }

  close(): void {
    this.#watch?.close();
    this.#watch = undefined;
  }
}
