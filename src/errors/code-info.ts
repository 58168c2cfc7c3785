/**
 * The shape of a row of the outcome table (codes.ts): the phase an outcome belongs to, what each
 * side is told (an HTTP status, or close frames), who caused it and its log level.
 */

/** `handshake`: answered with an HTTP status before any 101; `tunnel`: after the 101, with a close code. */
export type Phase = 'handshake' | 'http' | 'tunnel';
/** Who caused it: the client (downstream), a backend (upstream) or the gateway itself. */
export type Source = 'downstream' | 'upstream' | 'gateway';
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

/** A close frame the gateway writes: its code and a short reason (RFC 6455 §7.4). */
export type CloseFrame = readonly [code: number, reason: string];

/** The close frame each side gets when the gateway ends a tunnel with a code; absent: none. */
export interface Closes {
  readonly client?: CloseFrame;
  readonly backend?: CloseFrame;
}

export interface CodeInfo {
  readonly phase: Phase;
  /** HTTP status sent to the client (handshake/http phases); 0 when nothing can be sent. */
  readonly status: number;
  /** After the 101: the close frames the gateway writes toward each side still there to read one. */
  readonly closes: Closes;
  readonly source: Source;
  readonly level: LogLevel;
  /** One line for docs/errors.md and operators. */
  readonly description: string;
}
