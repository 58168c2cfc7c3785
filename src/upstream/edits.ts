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

/** No change: the request goes on as the other rules make it. */
export function noEdits(): UpstreamEdits {
  return { target: undefined, remove: new Set(), set: [] };
}
