/**
 * The per-route checks of the front half, shared by upgrades and plain HTTP requests: a stage says
 * which pass it applies to (a check that only upgrades ran would be skipped by a client falling
 * back to long-polling), reads the request, and either refuses it or edits what goes to the
 * backend through `upstream` (a target without a query token, headers to remove before they
 * could be spoofed, headers to set), which the passes apply when they build the backend's head
 * (src/upstream/headers.ts, src/http/request-head.ts). Stages run in the order the route lists
 * them, cheap checks first; the first refusal wins.
 */
import type { VerifiedToken } from '../auth/verify-token.ts';
import type { Rejection } from '../errors/rejection.ts';
import type { ForwardedFor } from '../listener/client-address.ts';
import type { ListenerInfo } from '../listener/listener.ts';
import type { EventLog } from '../observability/connection-log.ts';
import type { IncomingHead } from '../protocol/incoming-head.ts';
import type { DownstreamEdits, UpstreamEdits } from '../upstream/edits.ts';

export {
  type DownstreamEdits,
  noDownstreamEdits,
  noEdits,
  type UpstreamEdits,
} from '../upstream/edits.ts';

/** Which pass a request is in. */
export type Pass = 'upgrade' | 'request';

/** A stage's decision to refuse the request. */
export type { Rejection };

/** What the token check found, for the stages after it and the tunnel. */
export interface AuthFindings {
  /** The verified token, once the token check passed. */
  token: VerifiedToken | undefined;
  /** The subprotocol marker the client offered: the 101 names it if the backend chose none. */
  subprotocolMarker: string | undefined;
}

/** Nothing found yet. */
export function noFindings(): AuthFindings {
  return { token: undefined, subprotocolMarker: undefined };
}

/** What a stage sees of a request, in either pass. */
export interface FrontContext {
  readonly pass: Pass;
  readonly req: IncomingHead;
  readonly listener: ListenerInfo;
  readonly forwarded: ForwardedFor;
  readonly requestId: string;
  readonly log: EventLog;
  readonly upstream: UpstreamEdits;
  /** What the client's answer gets on top of the backend's. */
  readonly downstream: DownstreamEdits;
  readonly auth: AuthFindings;
}

/** One named check of a route. */
export interface RequestStage {
  readonly name: string;
  readonly appliesTo: Pass | 'both';
  run(ctx: FrontContext): Rejection | undefined | Promise<Rejection | undefined>;
}

/**
 * Runs the stages that apply to `ctx.pass`, in order, until one refuses. Synchronous stages give a
 * synchronous answer, so a route without asynchronous checks costs no extra turn of the event loop.
 */
export function runStages(
  stages: readonly RequestStage[],
  ctx: FrontContext,
): Rejection | undefined | Promise<Rejection | undefined> {
  for (let i = 0; i < stages.length; i++) {
    const stage = stages[i];
    if (stage === undefined || (stage.appliesTo !== 'both' && stage.appliesTo !== ctx.pass)) continue;
    const result = stage.run(ctx);
    if (result instanceof Promise)
      return result.then((rejection) => rejection ?? runRest(stages, i + 1, ctx));
    if (result !== undefined) return result;
  }
  return undefined;
}

function runRest(stages: readonly RequestStage[], from: number, ctx: FrontContext) {
  return runStages(stages.slice(from), ctx);
}
