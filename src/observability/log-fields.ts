/**
 * What a client sent, made fit for a log line: request paths with the values of their query
 * parameters redacted (tokens and secrets travel there: `?token=…`), names kept so the line still
 * says what was asked, and every client-chosen value capped in length, so that a 16 KiB header
 * cannot make each line a 16 KiB line.
 */
import { decodeQueryPart } from '../protocol/request-values.ts';

/**
 * How a logged path shows its query string: values redacted, or as received except the
 * parameters in `secrets` (the routes' token parameters), whose values are redacted always.
 */
export interface QueryLogging {
  readonly mode: 'redact' | 'keep';
  readonly secrets: ReadonlySet<string>;
}

/** Longest client-chosen text kept in a log field; longer text is cut and marked. */
export const MAX_LOGGED_LENGTH = 512;

const REDACTED = '[redacted]';

/** `text` cut to MAX_LOGGED_LENGTH, with a marker saying how much was left out. */
export function capped(text: string): string {
  if (text.length <= MAX_LOGGED_LENGTH) return text;
  return `${text.slice(0, MAX_LOGGED_LENGTH)}…(+${text.length - MAX_LOGGED_LENGTH})`;
}

/** A header value for a log line: the first one if repeated, capped; undefined if absent. */
export function loggedHeader(value: string | string[] | undefined): string | undefined {
  const first = Array.isArray(value) ? value[0] : value;
  return first === undefined ? undefined : capped(first);
}

/** A parameter name as a server reads it (percent-decoded, `+` as a space). */
const parameterName = (raw: string): string => decodeQueryPart(raw) ?? raw;

/**
 * A request target for a log line: `/echo?room=42&token=abc` becomes
 * `/echo?room=[redacted]&token=[redacted]` unless the mode is `keep` (then only the secret
 * parameters are). Parameters without a value (`?debug`) and empty values stay as they are.
 */
export function loggedPath(target: string, query: QueryLogging): string {
  const queryAt = target.indexOf('?');
  if (queryAt === -1 || (query.mode === 'keep' && query.secrets.size === 0)) return capped(target);
  const parameters = target
    .slice(queryAt + 1)
    .split('&')
    .map((parameter) => {
      const equals = parameter.indexOf('=');
      if (equals === -1 || equals === parameter.length - 1) return parameter;
      if (query.mode === 'keep' && !query.secrets.has(parameterName(parameter.slice(0, equals)))) {
        return parameter;
      }
      return `${parameter.slice(0, equals)}=${REDACTED}`;
    });
  return capped(`${target.slice(0, queryAt)}?${parameters.join('&')}`);
}
