/**
 * What a limit may answer about a data frame when its header completes, shared by the frame
 * scanner that asks and the limits that answer: nothing (go on), a veto (stop the stream at this
 * frame and close), or WAIT (hold this frame back until a throttle allows it).
 */
import type { ErrorCode } from '../errors/codes.ts';

/** Which limit decided, as metrics and logs name it. */
export type LimitName =
  | 'message_size'
  | 'frame_size'
  | 'message_rate'
  | 'byte_rate'
  | 'idle_timeout'
  | 'lifetime';

/** A limit's decision to end the stream at the current frame. */
export interface Veto {
  readonly code: ErrorCode;
  readonly limit: LimitName;
  readonly detail: string;
}

/** Hold the current frame back for now (a throttle in debt). */
export const WAIT = 'wait';
export type Wait = typeof WAIT;
