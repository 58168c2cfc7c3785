/**
 * What the front half's request stages change in the request a backend receives: a target to send
 * instead of the client's, header names to leave out, headers to add. The heads toward the backend
 * (headers.ts for upgrades, http/request-head.ts for plain requests) apply them.
 */

export interface UpstreamEdits {
  /** The request target to send instead of the client's (path and query), if a stage set one. */
  target: string | undefined;
  /** Header names, lower case, left out of what the backend receives. */
  readonly remove: Set<string>;
  /** Headers added to what the backend receives (after the removals), in order. */
  readonly set: [string, string][];
}

/**
 * Whether `lower` (a header name, lower case) is one the edits leave out: a removed name, or an
 * underscore spelling of one (`X_User_Id` for `x-user-id`), which many backends read the same.
 */
export function removes(edits: UpstreamEdits, lower: string): boolean {
  if (edits.remove.size === 0) return false;
  return edits.remove.has(lower) || (lower.includes('_') && edits.remove.has(lower.replaceAll('_', '-')));
}

/** No change: the request goes on as the other rules make it. */
export function noEdits(): UpstreamEdits {
  return { target: undefined, remove: new Set(), set: [] };
}

/** What the client's answer gets on top of the backend's (the 101, or a plain response). */
export interface DownstreamEdits {
  /** Headers added, in order (e.g. the gateway's affinity cookie). */
  readonly headers: [string, string][];
}

/** Nothing added. */
export function noDownstreamEdits(): DownstreamEdits {
  return { headers: [] };
}
