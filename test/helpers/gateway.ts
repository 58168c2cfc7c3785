/**
 * Starts a real gateway for a test on 127.0.0.1 with port 0 listeners, from a partial config that
 * goes through the same YAML loader as a config file. At teardown it checks the leak invariants
 * (no pending handshake, no tunnel, no HTTP request in flight, the active-connections gauges at 0)
 * before shutting down.
 */
import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import { stringify } from 'yaml';
import { listenAdmin } from '../../src/admin/admin-server.ts';
import { parseConfigText } from '../../src/config/load.ts';
import type { Config } from '../../src/config/schema.ts';
import { adminOptions, createGateway, type Gateway } from '../../src/gateway.ts';
import { createLogger } from '../../src/observability/logger.ts';
import type { Clock } from '../../src/tunnel/sweeper.ts';
import type { Resolver } from '../../src/upstream/discovery.ts';
import { eventually } from './eventually.ts';

export type LogRecord = Record<string, unknown> & { msg?: string; level?: string };

export interface TestGateway {
  readonly gateway: Gateway;
  readonly config: Config;
  /** Port of the first listener (or of `listener`). */
  port(listener?: string): number;
  /** `ws://127.0.0.1:PORT{path}` on the first listener. */
  wsUrl(path?: string): string;
  httpUrl(path?: string): string;
  adminPort(): number;
  /** Every log record written so far, parsed. */
  readonly logs: LogRecord[];
  /** Sum of a metric's samples whose labels include `labels`. */
  metric(name: string, labels?: Record<string, string>): Promise<number>;
}

export interface StartOptions {
  /** Directory that relative file paths in the config resolve against. */
  readonly baseDir?: string;
  /** Skip the leak check (for tests that end with the gateway already shut down). */
  readonly skipLeakCheck?: boolean;
  /** The gateway's clock (default: the system clock). */
  readonly clock?: Clock;
  /** DNS for discovered backends (default: the system's). */
  readonly resolver?: Resolver;
}

/** Deep-merges `override` into `base` (objects only; arrays and scalars replace). */
function merge(base: Record<string, unknown>, override: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(override)) {
    const current = out[key];
    if (
      value &&
      typeof value === 'object' &&
      !Array.isArray(value) &&
      current &&
      typeof current === 'object' &&
      !Array.isArray(current)
    ) {
      out[key] = merge(current as Record<string, unknown>, value as Record<string, unknown>);
    } else {
      out[key] = value;
    }
  }
  return out;
}

const DEFAULTS = {
  log: { level: 'debug' },
  admin: { address: '127.0.0.1', port: 0 },
  listeners: { public: { address: '127.0.0.1', port: 0 } },
  shutdown: { closeSpread: '0s', drainTimeout: '5s' },
  tunnel: { closeTimeout: '2s' },
};

/** Builds a Config from a partial raw config, exactly as a YAML file would be loaded. */
export function testConfig(raw: Record<string, unknown>, baseDir = process.cwd()): Config {
  return parseConfigText(stringify(merge(DEFAULTS, raw)), { file: 'test.yaml', baseDir, env: {} });
}

/** The leak invariants checked at teardown: nothing left in the registry, both gauges at 0. */
async function assertNothingLeft(
  gateway: Gateway,
  metric: (name: string, labels?: Record<string, string>) => Promise<number>,
): Promise<void> {
  const { registry } = gateway;
  await eventually(
    () => registry.tunnelCount === 0 && registry.pendingCount === 0 && registry.requestCount === 0,
    'no tunnel, pending handshake or HTTP request left',
  ).catch((error: unknown) => {
    throw new Error(
      `leak at teardown: tunnels ${registry.tunnelCount}, pending handshakes ${registry.pendingCount}, HTTP requests in flight ${registry.requestCount}`,
      { cause: error },
    );
  });
  assert.equal(await metric('wsgate_connections_active'), 0, 'wsgate_connections_active is 0 at teardown');
  assert.equal(
    await metric('wsgate_backend_connections_active'),
    0,
    'wsgate_backend_connections_active is 0 at teardown',
  );
}

export async function startGateway(
  t: TestContext,
  raw: Record<string, unknown>,
  options: StartOptions = {},
): Promise<TestGateway> {
  const config = testConfig(raw, options.baseDir);
  const logs: LogRecord[] = [];
  const log = createLogger({
    level: config.log.level,
    format: 'json',
    destination: { write: (line: string) => void logs.push(JSON.parse(line) as LogRecord) },
  });
  const gateway = createGateway(config, {
    log,
    version: '0.0.0-test',
    ...(options.clock ? { clock: options.clock } : {}),
    ...(options.resolver ? { resolver: options.resolver } : {}),
  });
  await gateway.start();
  const admin = config.admin.enabled
    ? await listenAdmin(
        // `POST /reload` loads the test's configuration again, as the command loads its file.
        adminOptions(gateway, log, () => gateway.reload(() => config)),
        config.admin.address,
        config.admin.port,
      )
    : undefined;
  const firstListener = Object.keys(config.listeners)[0] ?? 'public';
  const port = (listener = firstListener): number => {
    const address = gateway.addresses()[listener];
    assert.ok(address, `listener ${listener} is bound`);
    return address.port;
  };
  const metric = async (name: string, labels: Record<string, string> = {}): Promise<number> => {
    const found = gateway.metrics.registry.getSingleMetric(name);
    assert.ok(found, `metric ${name} exists`);
    const data = await found.get();
    return data.values
      .filter((sample) =>
        Object.entries(labels).every(([key, value]) => String(sample.labels[key]) === value),
      )
      .reduce((sum, sample) => sum + sample.value, 0);
  };
  t.after(async () => {
    try {
      if (!options.skipLeakCheck) await assertNothingLeft(gateway, metric);
    } finally {
      // Shut down even when the check fails, or the open listeners would keep the process alive.
      await gateway.shutdown();
      await admin?.close();
    }
  });
  return {
    gateway,
    config,
    port,
    wsUrl: (path = '/') => `ws://127.0.0.1:${port()}${path}`,
    httpUrl: (path = '/') => `http://127.0.0.1:${port()}${path}`,
    adminPort: () => {
      assert.ok(admin, 'admin server is bound');
      return admin.address().port;
    },
    logs,
    metric,
  };
}
