/**
 * The one access-log line of each plain HTTP request, written when its response closes: who asked
 * what (method, path with query values redacted, Host, User-Agent), where it went (route, pool,
 * backend), what came back (status, whether the response was sent in full) and how long it took,
 * with the request id the backend also received. Every line is written at least at the
 * configured level; a request the gateway had to answer or cut itself carries its outcome code,
 * is never sampled out, and logs at that code's level where it is more severe. The others are
 * sampled, since long-polling clients make many of them.
 */
import type { IncomingMessage } from 'node:http';
import { CODES, type ErrorCode } from '../errors/codes.ts';
import { loggedHeader, loggedPath, type QueryLogging } from '../observability/log-fields.ts';
import { type Logger, moreSevere } from '../observability/logger.ts';

export interface AccessLineSettings {
  readonly level: 'trace' | 'debug' | 'info' | 'warn';
  /** Share of lines of answered requests written, 0 to 1. */
  readonly sample: number;
  readonly query: QueryLogging;
}

/** What is known of one request as it goes; filled in by the HTTP pass. */
export interface RequestRecord {
  readonly requestId: string;
  readonly listener: string;
  readonly client: string;
  readonly startedAt: number;
  route: string;
  pool: string | undefined;
  backend: string | undefined;
  /** Why the gateway answered or cut the request itself, if it did. */
  code: ErrorCode | undefined;
  /** Details of that outcome, for the log only. */
  detail: Record<string, unknown>;
}

export class HttpAccessLog {
  readonly #log: Logger;
  readonly #settings: AccessLineSettings;
  readonly #random: () => number;

  constructor(log: Logger, settings: AccessLineSettings, random: () => number = Math.random) {
    this.#log = log;
    this.#settings = settings;
    this.#random = random;
  }

  /** Writes the line of a request whose response has closed with `status` (sent in full or not). */
  write(req: IncomingMessage, record: RequestRecord, status: number, complete: boolean): void {
    const code = record.code;
    if (code === undefined) {
      const { sample } = this.#settings;
      if (sample < 1 && !(this.#random() < sample)) return;
    }
    const level =
      code === undefined ? this.#settings.level : moreSevere(this.#settings.level, CODES[code].level);
    this.#log[level](
      {
        requestId: record.requestId,
        listener: record.listener,
        route: record.route || undefined,
        pool: record.pool,
        backend: record.backend,
        client: record.client,
        method: req.method,
        path: loggedPath(req.url ?? '/', this.#settings.query),
        host: loggedHeader(req.headers.host),
        userAgent: loggedHeader(req.headers['user-agent']),
        status,
        complete,
        durationMs: Math.round(performance.now() - record.startedAt),
        code,
        ...record.detail,
      },
      'http request',
    );
  }
}
