/**
 * The `origins` block: which browser origins may open WebSockets (and send plain requests) on a
 * route, against Cross-Site WebSocket Hijacking. The top-level block holds the defaults; a route's
 * own `origins` block has the same fields, each optional, replacing the defaults field by field.
 * Entries are parsed here, so a bad one is reported at its line.
 */
import { z } from 'zod';
import { parseOriginPattern } from '../protocol/origin.ts';

const entry = z.string().transform((text, ctx) => {
  const pattern = parseOriginPattern(text.trim());
  if ('problem' in pattern) {
    ctx.addIssue({ code: 'custom', message: pattern.problem });
    return z.NEVER;
  }
  return pattern;
});

const allow = z
  .array(entry)
  .describe(
    'Origins allowed: exact ("https://app.example.com"), by subdomain ("https://*.example.com": names under example.com, not example.com itself), or "null" (sandboxed pages and files). Empty: every Origin is accepted.',
  );
const missing = z
  .enum(['allow', 'refuse'])
  .describe(
    'An upgrade without an Origin header: allow or refuse (403). Browsers always send one; a non-browser client may send none, or any Origin it likes, so this keeps out only the clients that do not pretend.',
  );
const plainHttp = z
  .boolean()
  .describe(
    'Check plain HTTP requests that carry an Origin too (the long-polling of Socket.IO and SockJS); requests without one pass (browsers omit it on same-origin GETs, and on cross-site script and image loads: turn JSONP transports off on the backend).',
  );

export const originsSchema = z.strictObject({
  allow: allow.prefault([]),
  missing: missing.default('allow'),
  plainHttp: plainHttp.default(true),
});

export const originsOverridesSchema = z.strictObject({
  allow: allow.optional(),
  missing: missing.optional(),
  plainHttp: plainHttp.optional(),
});

export type OriginSettings = z.output<typeof originsSchema>;
export type OriginOverrides = z.output<typeof originsOverridesSchema>;
