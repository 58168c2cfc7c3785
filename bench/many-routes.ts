/**
 * Generates a valid wsgate configuration with N routes, for measuring what a large route table
 * costs to check, start, hold and look up. The routes mix exact hosts, wildcard hosts and routes
 * for any host, with path prefixes of varied depth, spread over a handful of pools; the same N
 * always gives the same file. It also gives the requests the lookup benchmark sends (hits of every
 * kind and misses).
 *
 *   node bench/many-routes.ts N [FILE]    write the configuration to FILE (default: stdout)
 */
import { writeFileSync } from 'node:fs';

/** Pools the routes are spread over. */
export const POOL_COUNT = 8;

/** A route as written in the configuration file. */
export interface GeneratedRoute {
  readonly name: string;
  readonly hosts: readonly string[];
  readonly path: string;
  readonly pool: string;
}

const SECTIONS = ['api', 'ws', 'chat', 'live', 'socket.io', 'events', 'feed', 'rt'];

/** The host name of tenant `index` (a few hundred distinct names, shared by several routes). */
function tenantHost(index: number): string {
  return `t${index % 400}.example.com`;
}

/** A path prefix of depth 1 to 4 that is unique to route `index`. */
function uniquePath(index: number): string {
  const section = SECTIONS[index % SECTIONS.length] ?? 'api';
  switch (index % 4) {
    case 0:
      return `/${section}-${index}`;
    case 1:
      return `/${section}/v${index % 3}/r${index}`;
    case 2:
      return `/${section}/v${index % 3}/room/${index}/`;
    default:
      return `/${section}/${index}/stream/socket`;
  }
}

/** The `index`th route: 40% exact hosts, 30% wildcard hosts, 5% an exact host and a wildcard, 25% any host. */
export function generatedRoute(index: number): GeneratedRoute {
  const kind = index % 10;
  const hosts =
    kind < 4
      ? [tenantHost(index)]
      : kind < 7
        ? [`*.r${index % 300}.example.com`]
        : kind === 7 && index % 20 === 7
          ? [tenantHost(index), `*.${tenantHost(index)}`]
          : [];
  return { name: `route-${index}`, hosts, path: uniquePath(index), pool: `pool-${index % POOL_COUNT}` };
}

/** The first `count` routes. */
export function generatedRoutes(count: number): GeneratedRoute[] {
  return Array.from({ length: count }, (_, index) => generatedRoute(index));
}

/** The configuration text with `count` routes, listeners and admin on free ports. */
export function manyRoutesConfig(count: number): string {
  const lines = [
    'log: { level: warn }',
    'admin: { address: 127.0.0.1, port: 0 }',
    'listeners:',
    '  public: { address: 127.0.0.1, port: 0 }',
    'pools:',
  ];
  for (let pool = 0; pool < POOL_COUNT; pool++) {
    lines.push(
      `  pool-${pool}:`,
      '    backends:',
      `      - http://10.0.${pool}.1:3000`,
      `      - { url: "http://10.0.${pool}.2:3000", weight: 2 }`,
      '    connectTimeout: 2s',
    );
  }
  lines.push('routes:');
  for (const route of generatedRoutes(count)) {
    lines.push(`  ${route.name}:`);
    if (route.hosts.length > 0) lines.push(`    hosts: [${route.hosts.map((h) => `"${h}"`).join(', ')}]`);
    lines.push(`    path: ${route.path}`, `    pool: ${route.pool}`);
  }
  return `${lines.join('\n')}\n`;
}

/** A request the router is asked about. */
export interface LookupRequest {
  readonly host: string | undefined;
  readonly url: string;
}

/**
 * `count` requests against the first `routes` routes: hits on exact, wildcard and any-host routes
 * (with longer paths and queries), and misses (unknown hosts, unknown paths).
 */
export function lookupRequests(routes: number, count: number): LookupRequest[] {
  return Array.from({ length: count }, (_, request) => {
    const route = generatedRoute((request * 7919) % routes);
    const tail = request % 3 === 0 ? '' : `/x/${request}?token=abc&p=/chat`;
    const path = `${route.path}${tail}`;
    switch (request % 8) {
      case 6:
        return { host: `nobody-${request}.example.org`, url: `/missing/${request}` };
      case 7:
        return { host: undefined, url: path };
      default: {
        const host = route.hosts[0];
        if (host === undefined) return { host: `client-${request % 50}.example.net`, url: path };
        return { host: host.startsWith('*.') ? `a${request % 9}${host.slice(1)}` : host, url: path };
      }
    }
  });
}

function main(args: readonly string[]): number {
  const count = Number(args[0]);
  if (!Number.isInteger(count) || count < 1) {
    process.stderr.write('usage: node bench/many-routes.ts N [FILE]\n');
    return 2;
  }
  const text = manyRoutesConfig(count);
  if (args[1] === undefined) process.stdout.write(text);
  else writeFileSync(args[1], text);
  return 0;
}

if (import.meta.main) process.exitCode = main(process.argv.slice(2));
