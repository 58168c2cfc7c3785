/**
 * A pool's backends as the configuration lists them: a URL (scheme, host and port only), its
 * weight, and whether its host name is to be discovered in DNS (`dns`: its A and AAAA records, each
 * address a backend on the URL's port; `srv`: an SRV name whose targets and ports are the
 * backends); and how discovery runs and how long a backend that leaves keeps its tunnels.
 */
import { isIP } from 'node:net';
import { z } from 'zod';
import { duration, durationOrOff, OFF } from './measures.ts';

export const backendSchema = z
  .union([
    z.string().describe('Backend base URL, http:// or https:// (weight 1).'),
    z.strictObject({
      url: z.string().describe('Backend base URL, http:// or https://.'),
      weight: z
        .number()
        .int()
        .min(1)
        .max(1000)
        .default(1)
        .describe('Relative share of new connections (of each address, for a discovered entry).'),
      discover: z
        .enum(['dns', 'srv'])
        .optional()
        .describe(
          "Find the backends in DNS on the pool's discovery interval. dns: the host name's A and AAAA records, each address a backend on the URL's port (a Kubernetes headless Service); srv: the host name is an SRV name (_http._tcp.chat.ns.svc.cluster.local) whose targets at the lowest priority, on their ports, are the backends. Absent: the URL is the backend.",
        ),
    }),
  ])
  .transform((entry): { url: string; weight: number; discover?: 'dns' | 'srv' | undefined } =>
    typeof entry === 'string' ? { url: entry, weight: 1 } : entry,
  )
  .transform((entry, ctx) => {
    let url: URL;
    try {
      url = new URL(entry.url);
    } catch {
      ctx.addIssue({ code: 'custom', message: `"${entry.url}" is not a URL` });
      return z.NEVER;
    }
    const problem = urlProblem(url, entry.discover);
    if (problem) {
      ctx.addIssue({ code: 'custom', message: problem });
      return z.NEVER;
    }
    return {
      url: url.origin,
      weight: entry.weight,
      ...(entry.discover === undefined ? {} : { discover: entry.discover }),
    };
  });

function urlProblem(url: URL, discover: 'dns' | 'srv' | undefined): string | undefined {
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return 'must be http: or https:';
  if (url.username || url.password) return 'must not hold credentials (user:password@)';
  if ((url.pathname !== '/' && url.pathname !== '') || url.search || url.hash) {
    return 'must be scheme://host:port only (the request path is kept as is)';
  }
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  if (discover !== undefined && isIP(host) !== 0) {
    return `discover: ${discover} needs a host name to look up, not the address ${host}`;
  }
  if (discover === 'srv' && url.port !== '') {
    return 'discover: srv takes the ports from the SRV records: write the URL without one';
  }
  return undefined;
}

export const discoverySchema = z
  .strictObject({
    interval: duration('10s').describe(
      'Time between two lookups of each discovered name (at most this late after a change in DNS).',
    ),
    timeout: duration('5s').describe(
      'Time a lookup may take; one that fails or finds nothing keeps the last set found.',
    ),
  })
  .prefault({})
  .describe('How backends listed with `discover` are looked up.');

export const drainTimeoutSchema = duration('30s').describe(
  'Time a backend that left the pool (gone from DNS) keeps its open WebSockets, taking no new ones; those still open then are closed with 1001.',
);

export const slowStartSchema = durationOrOff()
  .prefault(OFF)
  .describe(
    "Warm-up of a backend that joins the pool or comes back up: its share of new connections grows from a tenth of its weight's to all of it over this time, so a scale-out gets no reconnect storm at once; off: full share at once.",
  );

export type BackendEntry = z.output<typeof backendSchema>;
