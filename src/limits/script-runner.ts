/**
 * Runs the limit store's Lua scripts on the Redis connection: by SHA, sending the source when Redis
 * does not have it (NOSCRIPT: after a restart, a failover or SCRIPT FLUSH), within the store's
 * `timeout`. node-redis does not take back a command already written, so the wait is bounded here
 * (the late answer is dropped; the command queue is bounded). Each run's time is observed.
 */
import type { RedisConnection } from './redis-connection.ts';
import type { RedisScript } from './redis-scripts.ts';

export type Operation = 'client' | 'subject' | 'refresh' | 'remove' | 'ping';

export class ScriptRunner {
  readonly #connection: RedisConnection;
  readonly #timeoutMs: number;
  readonly #observe: (operation: Operation, seconds: number) => void;

  constructor(
    connection: RedisConnection,
    timeoutMs: number,
    observe: (operation: Operation, seconds: number) => void,
  ) {
    this.#connection = connection;
    this.#timeoutMs = timeoutMs;
    this.#observe = observe;
  }

  /**
   * Runs `script` on `keys` with the arguments `args` makes when each command is sent: a script
   * sent again after NOSCRIPT must not add back leases given back in between.
   */
  run(
    operation: Operation,
    script: RedisScript,
    keys: readonly string[],
    args: () => string[],
  ): Promise<unknown> {
    const tail = (): string[] => [String(keys.length), ...keys, ...args()];
    return this.#bounded(operation, async (abortSignal) => {
      try {
        return await this.#connection.sendCommand(['EVALSHA', script.sha, ...tail()], { abortSignal });
      } catch (error) {
        if (!(error instanceof Error && error.message.startsWith('NOSCRIPT'))) throw error;
        return await this.#connection.sendCommand(['EVAL', script.source, ...tail()], { abortSignal });
      }
    });
  }

  /** One PING, to see whether Redis answers. */
  ping(): Promise<unknown> {
    return this.#bounded('ping', (abortSignal) => this.#connection.sendCommand(['PING'], { abortSignal }));
  }

  async #bounded(
    operation: Operation,
    send: (abortSignal: AbortSignal) => Promise<unknown>,
  ): Promise<unknown> {
    const started = performance.now();
    const unsent = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => {
        unsent.abort();
        reject(new Error(`no answer within ${this.#timeoutMs} ms`));
      }, this.#timeoutMs);
    });
    const sending = send(unsent.signal);
    sending.catch(() => {});
    try {
      return await Promise.race([sending, timedOut]);
    } finally {
      clearTimeout(timer);
      this.#observe(operation, (performance.now() - started) / 1000);
    }
  }
}
