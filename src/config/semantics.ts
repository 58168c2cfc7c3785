/**
 * Checks on a schema-valid configuration that look across fields or need the platform to decide:
 * routes naming pools, trusted proxy and load balancer ranges, listeners sharing a port,
 * certificates matching their keys (listener-semantics.ts), CA bundles parsing, pools
 * (pool-semantics.ts), routes shadowing
 * each other, the shutdown windows fitting together.
 * Each problem carries the path of the field to fix, so the loader can point at its line like any
 * schema problem.
 */
import { X509Certificate } from 'node:crypto';
import { BlockList, isIP } from 'node:net';
import { matchingPath } from '../protocol/path-key.ts';
import { checkAuthSettings } from './auth-semantics.ts';
import { checkListenerTls, checkReusePort } from './listener-semantics.ts';
import { checkPools } from './pool-semantics.ts';
import type { Config } from './schema.ts';
import type { SemanticProblem } from './semantic-problem.ts';
import { formatDuration } from './units.ts';

export type { SemanticProblem } from './semantic-problem.ts';

/** The reason of a platform error without OpenSSL's `error:0A00...:SSL routines::` prefix. */
function reason(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.replace(/^error:[0-9A-Fa-f]+:[^:]*:[^:]*:/, '').trim() || message;
}

function checkRoutePools(config: Config, out: SemanticProblem[]): void {
  const pools = Object.keys(config.pools);
  const known = pools.length > 0 ? `pools: ${pools.join(', ')}` : 'no pools are defined';
  for (const [name, route] of Object.entries(config.routes)) {
    if (!Object.hasOwn(config.pools, route.pool)) {
      out.push({ path: ['routes', name, 'pool'], message: `no pool named "${route.pool}" (${known})` });
    }
  }
}

/** True when `entry` is an IP address or a CIDR range (`10.0.0.0/8`, `fd00::/8`). */
export function isAddressOrRange(entry: string): boolean {
  const slash = entry.indexOf('/');
  if (slash === -1) return isIP(entry) !== 0;
  const address = entry.slice(0, slash);
  const prefixText = entry.slice(slash + 1);
  const family = isIP(address);
  if (family === 0 || !/^\d{1,3}$/.test(prefixText)) return false;
  const prefix = Number(prefixText);
  if (prefix > (family === 4 ? 32 : 128)) return false;
  try {
    new BlockList().addSubnet(address, prefix, family === 4 ? 'ipv4' : 'ipv6');
    return true;
  } catch {
    return false;
  }
}

function checkTrustedProxies(config: Config, out: SemanticProblem[]): void {
  config.forwarding.trustedProxies.forEach((entry, index) => {
    if (!isAddressOrRange(entry)) {
      out.push({
        path: ['forwarding', 'trustedProxies', index],
        message: `"${entry}" is not an IP address or CIDR range (e.g. 10.0.0.0/8, 192.168.1.10, fd00::/8)`,
      });
    }
  });
}

function checkProxyProtocolPeers(config: Config, out: SemanticProblem[]): void {
  for (const [name, listener] of Object.entries(config.listeners)) {
    listener.proxyProtocolPeers.forEach((entry, index) => {
      if (!isAddressOrRange(entry)) {
        out.push({
          path: ['listeners', name, 'proxyProtocolPeers', index],
          message: `"${entry}" is not an IP address or CIDR range (e.g. 10.0.0.0/8, 192.168.1.10, fd00::/8)`,
        });
      }
    });
  }
}

/** A canonical spelling of a bind address, so that `::0` and `::` compare equal. */
function canonical(address: string): string {
  if (isIP(address) === 6) return new URL(`http://[${address}]/`).hostname.slice(1, -1);
  return address;
}

function isWildcard(address: string): boolean {
  return address === '0.0.0.0' || address === '::';
}

function isLoopbackName(address: string): boolean {
  return address === 'localhost' || address === '127.0.0.1' || address === '::1';
}

/** True when binding both addresses on the same port would fail (or shadow one another). */
function addressesOverlap(a: string, b: string): boolean {
  if (a === b || isWildcard(a) || isWildcard(b)) return true;
  return (a === 'localhost' || b === 'localhost') && isLoopbackName(a) && isLoopbackName(b);
}

interface Binding {
  readonly label: string;
  readonly address: string;
  readonly port: number;
}

function describe(binding: Binding): string {
  const host = binding.address.includes(':') ? `[${binding.address}]` : binding.address;
  return `${host}:${binding.port}`;
}

function checkPorts(config: Config, out: SemanticProblem[]): void {
  const taken: Binding[] = [];
  if (config.admin.enabled && config.admin.port !== 0) {
    taken.push({
      label: 'the admin server',
      address: canonical(config.admin.address),
      port: config.admin.port,
    });
  }
  for (const [name, listener] of Object.entries(config.listeners)) {
    const binding: Binding = {
      label: `listeners.${name}`,
      address: canonical(listener.address),
      port: listener.port,
    };
    if (binding.port === 0) continue;
    const clash = taken.find(
      (other) => other.port === binding.port && addressesOverlap(other.address, binding.address),
    );
    if (clash) {
      out.push({
        path: ['listeners', name, 'port'],
        message: `${describe(binding)} conflicts with ${clash.label} on ${describe(clash)}`,
      });
    }
    taken.push(binding);
  }
}

const PEM_BEGIN = '-----BEGIN CERTIFICATE-----';
const PEM_END = '-----END CERTIFICATE-----';

/**
 * The certificate blocks of a PEM text, each from its BEGIN line to the END after it. A scan, not
 * a lazy pattern, which took time quadratic in a file of BEGIN lines without their END.
 */
function certificateBlocks(text: string): string[] {
  const blocks: string[] = [];
  for (let begin = text.indexOf(PEM_BEGIN); begin !== -1; ) {
    const end = text.indexOf(PEM_END, begin + PEM_BEGIN.length);
    if (end === -1) break;
    blocks.push(text.slice(begin, end + PEM_END.length));
    begin = text.indexOf(PEM_BEGIN, end + PEM_END.length);
  }
  return blocks;
}

/** Why `pem` is not a usable CA bundle, or undefined when it is one. */
export function caBundleProblem(pem: Buffer): string | undefined {
  const blocks = certificateBlocks(pem.toString('latin1'));
  if (blocks.length === 0) return 'no PEM certificate in the file (expected "-----BEGIN CERTIFICATE-----")';
  for (const [index, block] of blocks.entries()) {
    try {
      new X509Certificate(block);
    } catch (error) {
      return `certificate ${index + 1} of ${blocks.length} cannot be parsed (${reason(error)})`;
    }
  }
  return undefined;
}

function checkPoolCa(config: Config, out: SemanticProblem[]): void {
  for (const [name, pool] of Object.entries(config.pools)) {
    if (!pool.tls.ca) continue;
    const problem = caBundleProblem(pool.tls.ca.pem);
    if (problem) out.push({ path: ['pools', name, 'tls', 'ca'], message: problem });
  }
}

function checkRouteOverlap(config: Config, out: SemanticProblem[]): void {
  const owners = new Map<string, string>();
  for (const [name, route] of Object.entries(config.routes)) {
    const hosts = route.hosts.length === 0 ? ['*'] : [...new Set(route.hosts)];
    const reported = new Set<string>();
    for (const host of hosts) {
      // Paths are matched normalized (`/%61pi` is `/api`) and also read without regard to case
      // (routing/route-lookup.ts): so are they compared here.
      const key = `${host} ${matchingPath(route.path).toLowerCase()}`;
      const owner = owners.get(key);
      if (owner === undefined) {
        owners.set(key, name);
      } else if (!reported.has(owner)) {
        reported.add(owner);
        const which = host === '*' ? 'any host' : `host "${host}"`;
        out.push({
          path: ['routes', name],
          message: `${which} with path "${route.path}" is already served by routes.${owner} (ambiguous)`,
        });
      }
    }
  }
}

/**
 * The drain deadline counts from SIGTERM: the drain delay must end before it, and close frames
 * spread after the delay would otherwise meet tunnels already destroyed at the deadline.
 */
function checkShutdown(config: Config, out: SemanticProblem[]): void {
  const { drainTimeout, closeSpread, drainDelay } = config.shutdown;
  if (drainDelay >= drainTimeout) {
    out.push({
      path: ['shutdown', 'drainDelay'],
      message: `${formatDuration(drainDelay)} must be less than shutdown.drainTimeout (${formatDuration(drainTimeout)})`,
    });
    return;
  }
  if (drainDelay + closeSpread >= drainTimeout) {
    const limit =
      drainDelay === 0
        ? `shutdown.drainTimeout (${formatDuration(drainTimeout)})`
        : `shutdown.drainTimeout (${formatDuration(drainTimeout)}) minus shutdown.drainDelay (${formatDuration(drainDelay)})`;
    out.push({
      path: ['shutdown', 'closeSpread'],
      message: `${formatDuration(closeSpread)} must be less than ${limit}`,
    });
  }
}

/** Runs every cross-field check on a schema-valid configuration; an empty list means it is usable. */
export function checkSemantics(config: Config): SemanticProblem[] {
  const problems: SemanticProblem[] = [];
  checkRoutePools(config, problems);
  checkTrustedProxies(config, problems);
  checkProxyProtocolPeers(config, problems);
  checkPorts(config, problems);
  checkListenerTls(config, problems);
  checkReusePort(config, problems);
  checkPoolCa(config, problems);
  checkPools(config, problems);
  checkRouteOverlap(config, problems);
  checkShutdown(config, problems);
  checkAuthSettings(config, problems);
  return problems;
}
