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
  'res.headers["set-cookie"]',
];

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
