/**
 * The first stage of every route when some route sends token claims to backends as headers: the
 * client's copies of those headers (and their underscore spellings, see upstream/edits.ts) are
 * removed, on routes with and without tokens alike, so that no client can pass for a user on a
 * backend that believes them.
 */
import type { RequestStage } from './request-stage.ts';

/** The stage for `names` (lower case), or none when no route fills identity headers. */
export function identityHeadersStage(names: ReadonlySet<string>): RequestStage | undefined {
  if (names.size === 0) return undefined;
  return {
    name: 'identity-headers',
    appliesTo: 'both',
    run(ctx) {
      for (const name of names) ctx.upstream.remove.add(name);
      return undefined;
    },
  };
}
