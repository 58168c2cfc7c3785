/**
 * Creates the root pino logger. JSON lines on stdout by default (what log shippers expect);
 * `pretty` renders a short human-readable line instead, without a worker thread, so that what is
 * logged right before exit is never lost. Secrets that travel in headers are redacted wherever a
 * request's headers are logged.
 */
import { type DestinationStream, type Logger, pino } from 'pino';
import { createPrettyStream } from './pretty-stream.ts';

export type { Logger } from 'pino';

export interface LoggerOptions {
  readonly level: string;
  readonly format: 'json' | 'pretty';
  /** Where lines go; stdout (synchronously) by default. */
  readonly destination?: DestinationStream;
}

const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["proxy-authorization"]',
  'req.headers["sec-websocket-protocol"]',
  'res.headers["set-cookie"]',
];

/** Levels an access line may be written at, least severe first. */
const SEVERITY = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const;
export type AccessLevel = (typeof SEVERITY)[number];

/**
 * The more severe of two levels. An access line (one per tunnel or request) is written at least
 * at its configured level, whatever its outcome code's level: a line per connection must not
 * vanish because the client was the one that misbehaved.
 */
export function moreSevere(a: AccessLevel, b: AccessLevel): AccessLevel {
  return SEVERITY.indexOf(a) >= SEVERITY.indexOf(b) ? a : b;
}

/** The gateway's root logger; components get children with a `component` binding. */
export function createLogger(options: LoggerOptions): Logger {
  const stdout = options.destination ?? pino.destination({ dest: 1, sync: true });
  const destination = options.format === 'pretty' ? createPrettyStream(stdout) : stdout;
  return pino(
    {
      level: options.level,
      base: { pid: process.pid },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
}
