/**
 * A refusal of a request or an upgrade, by its code (the error table gives its status), with the
 * headers it needs (Retry-After, Sec-WebSocket-Version) and what the log should say of it.
 */
import type { ErrorCode } from './codes.ts';

export interface Rejection {
  readonly code: ErrorCode;
  /** Extra response headers, e.g. `Sec-WebSocket-Version: 13` with a 426. */
  readonly headers?: readonly (readonly [string, string])[];
  /** For the log only; never sent to the client. */
  readonly detail?: string;
}
