/**
 * What the `wsgate` command does: `wsgate --config FILE` runs the gateway in the foreground, `wsgate check
 * --config FILE` validates a configuration like `nginx -t`, plus `--help` and `--version`.
 * Signals: SIGTERM/SIGINT drain and exit 0; a second one exits at once with 1.
 * Exit codes: 0 success, 1 runtime failure (e.g. a port in use), 2 bad usage or invalid config.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { ConfigError } from './config/config-error.ts';
import { loadConfigFile } from './config/load.ts';
import { createGateway } from './gateway.ts';
import { createLogger } from './observability/logger.ts';

const HELP = `wsgate: a WebSocket gateway

Usage:
  wsgate [--config FILE]          run the gateway in the foreground
  wsgate check [--config FILE]    validate FILE, print every problem, exit 0 if valid
  wsgate --help | --version

Options:
  -c, --config FILE   configuration file (default: $WSGATE_CONFIG, else ./wsgate.yaml)
  -h, --help          show this help
  -v, --version       show the version

Signals: SIGTERM or SIGINT drains (new upgrades get 503, live WebSockets get close 1001) and
exits 0 within shutdown.drainTimeout; a second signal exits at once with status 1.
Exit status: 0 ok, 1 runtime failure, 2 usage error or invalid configuration.
Documentation: docs/configuration.md, docs/metrics.md, docs/errors.md
`;

function packageVersion(): string {
  const text = readFileSync(new URL('../package.json', import.meta.url), 'utf8');
  const parsed: unknown = JSON.parse(text);
  return typeof parsed === 'object' && parsed !== null && 'version' in parsed
    ? String(parsed.version)
    : '0.0.0';
}

function write(stream: NodeJS.WriteStream, text: string): void {
  stream.write(text.endsWith('\n') ? text : `${text}\n`);
}

interface Invocation {
  readonly command: 'run' | 'check' | 'help' | 'version';
  readonly configFile: string;
}

function parseInvocation(argv: readonly string[], env: NodeJS.ProcessEnv): Invocation {
  const { values, positionals } = parseArgs({
    args: [...argv],
    allowPositionals: true,
    options: {
      config: { type: 'string', short: 'c' },
      help: { type: 'boolean', short: 'h' },
      version: { type: 'boolean', short: 'v' },
    },
  });
  const configFile = values.config ?? env.WSGATE_CONFIG ?? 'wsgate.yaml';
  if (values.help) return { command: 'help', configFile };
  if (values.version) return { command: 'version', configFile };
  if (positionals.length === 0) return { command: 'run', configFile };
  if (positionals.length === 1 && positionals[0] === 'check') return { command: 'check', configFile };
  throw new TypeError(`unknown command "${positionals.join(' ')}"`);
}

async function run(configFile: string, version: string): Promise<number> {
  const config = loadConfigFile(configFile, process.env);
  const log = createLogger({ level: config.log.level, format: config.log.format });
  const gateway = createGateway(config, { log, version });
  let signals = 0;
  const exitCode = new Promise<number>((resolve) => {
    const onSignal = (signal: NodeJS.Signals): void => {
      signals++;
      if (signals > 1) {
        log.warn({ signal }, 'second signal, exiting now');
        process.exit(1);
      }
      log.info({ signal }, 'shutting down');
      gateway.shutdown().then(
        () => resolve(0),
        (error: unknown) => {
          log.error({ err: error }, 'shutdown failed');
          resolve(1);
        },
      );
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
  process.on('uncaughtException', (error) => {
    log.fatal({ err: error }, 'uncaught exception, exiting');
    process.exit(1);
  });
  try {
    await gateway.start();
  } catch (error) {
    log.fatal({ err: error }, 'could not start');
    return 1;
  }
  log.info({ version, config: configFile }, 'wsgate started');
  return exitCode;
}

async function main(): Promise<number> {
  let invocation: Invocation;
  try {
    invocation = parseInvocation(process.argv.slice(2), process.env);
  } catch (error) {
    write(process.stderr, `wsgate: ${error instanceof Error ? error.message : String(error)}\n\n${HELP}`);
    return 2;
  }
  const version = packageVersion();
  try {
    switch (invocation.command) {
      case 'help':
        write(process.stdout, HELP);
        return 0;
      case 'version':
        write(process.stdout, version);
        return 0;
      case 'check':
        loadConfigFile(invocation.configFile, process.env);
        write(process.stdout, `${invocation.configFile}: configuration is valid`);
        return 0;
      case 'run':
        return await run(invocation.configFile, version);
    }
  } catch (error) {
    if (error instanceof ConfigError) {
      write(process.stderr, error.message);
      return 2;
    }
    throw error;
  }
}

/** Runs the command line and sets the exit status. */
export function runCommand(): void {
  main().then(
    (code) => {
      process.exitCode = code;
      if (code !== 0 || process.argv.length > 2) setImmediate(() => process.exit(code)).unref();
    },
    (error: unknown) => {
      process.stderr.write(
        `wsgate: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
      );
      process.exit(1);
    },
  );
}
