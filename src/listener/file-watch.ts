/**
 * Says when files may have changed on disk, so that their reader looks at them again: fs.watch on
 * the directory of each (a Kubernetes secret volume swaps its `..data` symlink, which renames an
 * entry in that directory and never touches the files' own paths), and a poll every `intervalMs`
 * as a fallback (watches miss changes on some filesystems and network mounts, and stop when the
 * directory itself is replaced). A burst of events gives one call, `debounceMs` after the first.
 * It only says "look again": the caller compares contents. Neither the watchers nor the timers
 * hold the process open, and `close()` stops them all.
 */
import { type FSWatcher, watch } from 'node:fs';
import { dirname } from 'node:path';

export interface FileWatchOptions {
  /** Longest time between two looks, whatever the watchers report. */
  readonly intervalMs: number;
  /** Wait after a watcher's first event, for the rest of a burst of changes. */
  readonly debounceMs: number;
  readonly onChange: () => void;
  /** A directory that cannot be watched (the poll still covers it). */
  readonly onWatchError: (directory: string, error: Error) => void;
}

export interface FileWatch {
  close(): void;
}

function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}

/** Watches the directories of `paths` and polls; `onChange` runs when they may have changed. */
export function watchFiles(paths: readonly string[], options: FileWatchOptions): FileWatch {
  let closed = false;
  let pending: NodeJS.Timeout | undefined;
  const look = (): void => {
    pending = undefined;
    if (!closed) options.onChange();
  };
  const soon = (): void => {
    if (closed || pending !== undefined) return;
    pending = setTimeout(look, options.debounceMs);
    pending.unref();
  };
  const watchers: FSWatcher[] = [];
  for (const directory of new Set(paths.map((path) => dirname(path)))) {
    try {
      const watcher = watch(directory, { persistent: false }, soon);
      watcher.on('error', (error: unknown) => {
        watcher.close();
        options.onWatchError(directory, asError(error));
      });
      watchers.push(watcher);
    } catch (error) {
      options.onWatchError(directory, asError(error));
    }
  }
  const poll = setInterval(() => {
    if (!closed) options.onChange();
  }, options.intervalMs);
  poll.unref();
  return {
    close() {
      closed = true;
      clearTimeout(pending);
      clearInterval(poll);
      for (const watcher of watchers) watcher.close();
    },
  };
}
