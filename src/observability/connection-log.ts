/**
 * The log of one connection: its lines carry the connection's bindings (`conn`, `requestId`), and
 * the pino child that adds them is made at the first line written at an enabled level. Most
 * connections write one line, when they end, so an open connection holds no child logger (about
 * 0.3 KiB each) and a handshake makes none when nothing is logged.
 */
import type { Bindings } from 'pino';
import type { Logger } from './logger.ts';

type Level = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal';

/** What connection code writes through: a pino logger is one, and so is a ConnectionLog. */
export type EventLog = { readonly [level in Level]: (fields: object, message: string) => void } & {
  isLevelEnabled(level: string): boolean;
};

export class ConnectionLog implements EventLog {
  readonly #parent: Logger;
  readonly #bindings: Bindings;
  #child: Logger | undefined;

  constructor(parent: Logger, bindings: Bindings) {
    this.#parent = parent;
    this.#bindings = bindings;
  }

  /** A child's level is its parent's (nothing here changes it). */
  isLevelEnabled(level: string): boolean {
    return this.#parent.isLevelEnabled(level);
  }

  #write(level: Level, fields: object, message: string): void {
    if (!this.#parent.isLevelEnabled(level)) return;
    this.#child ??= this.#parent.child(this.#bindings);
    this.#child[level](fields, message);
  }

  trace(fields: object, message: string): void {
    this.#write('trace', fields, message);
  }
  debug(fields: object, message: string): void {
    this.#write('debug', fields, message);
  }
  info(fields: object, message: string): void {
    this.#write('info', fields, message);
  }
  warn(fields: object, message: string): void {
    this.#write('warn', fields, message);
  }
  error(fields: object, message: string): void {
    this.#write('error', fields, message);
  }
  fatal(fields: object, message: string): void {
    this.#write('fatal', fields, message);
  }
}
