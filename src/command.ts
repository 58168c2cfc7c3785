/**
 * What the `wsgate` command does: `wsgate --config FILE` runs the gateway in the foreground, `wsgate check
 * --config FILE` validates a configuration like `nginx -t`, `wsgate reload` asks the running
 * gateway to load its file again, plus `--help` and `--version`.
 * Signals: SIGTERM drains (after `shutdown.drainDelay`) and exits 0, SIGINT drains at once (and
 * during the drain delay starts the drain); any other second signal exits at once with 1. SIGHUP
 * reloads the configuration file (so does `wsgate reload`, through the admin server, and a change
 * of the file when `reload.watch` is on). Started by npm (`npx wsgate`), whose shell may
 * not pass signals on, the gateway drains when its parent goes away instead of running on as an
 * orphan; a Ctrl-C delivered twice at once (by the terminal and by npm) counts once.
 * Exit codes: 0 success, 1 runtime failure (e.g. a port in use), 2 bad usage or invalid config.
 */

import cluster from 'node:cluster';
import { parseArgs } from 'node:util';
import { ConfigError } from './config/config-error.ts';
import { loadConfigFile, parseConfigFileText, readConfigText } from './config/load.ts';
import { ConfigWatch } from './config-watch.ts';
import { singleInstance } from './instance.ts';
import type { ReloadOutcome } from './lifecycle.ts';
import type { Logger } from './observability/logger.ts';
import { createLogger } from './observability/logger.ts';
import { packageVersion } from './package-info.ts';
import { requestReload } from './reload-request.ts';
import { supervisor, workerCount } from './workers/supervisor.ts';
import { runWorker } from './workers/worker.ts';

const HELP = `wsgate: a WebSocket gateway

Usage:
  wsgate [--config FILE]          run the gateway in the foreground
  wsgate check [--config FILE]    validate FILE, print every problem, exit 0 if valid
  wsgate reload [--config FILE]   make the gateway running with FILE load it again (through its
                                  admin server, from this machine); exit 0 if it is in force
  wsgate --help | --version

Options:
  -c, --config FILE   configuration file (default: $WSGATE_CONFIG, else ./wsgate.yaml)
  -h, --help          show this help
  -v, --version       show the version

Signals: SIGTERM drains (after shutdown.drainDelay: new upgrades get 503, live WebSockets get
close 1001) and exits 0 within shutdown.drainTimeout; SIGINT (Ctrl-C) drains at once, also during
the drain delay; any other second signal exits at once with status 1. SIGHUP reloads the
configuration file: an invalid one is logged and changes nothing.
Exit status: 0 ok, 1 runtime failure, 2 usage error or invalid configuration.
Documentation: docs/configuration.md, docs/metrics.md, docs/errors.md
`;

/**
 * A second SIGINT within this window is the same Ctrl-C delivered twice (a terminal sends it to
 * the whole process group, and npm forwards it to its child as well).
 */
const DUPLICATE_SIGNAL_MS = 1_000;

/** A command line that cannot be run: its message is printed with the usage, exit status 2. */
class UsageError extends Error {}

function write(stream: NodeJS.WriteStream, text: string): void {
  stream.write(text.endsWith('\n') ? text : `${text}\n`);
}

interface Invocation {
  readonly command: 'run' | 'check' | 'reload' | 'help' | 'version';
  readonly configFile: string;
}

const OPTIONS = {
  config: { type: 'string', short: 'c' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean', short: 'v' },
} as const;

/** Reads the command line; every mistake is a UsageError naming what was wrong. */
function parseInvocation(argv: readonly string[], env: NodeJS.ProcessEnv): Invocation {
  // Not strict: unknown options come back as tokens, reported in the gateway's own words.
  const { values, positionals, tokens } = parseArgs({
    args: [...argv],
    allowPositionals: true,
    strict: false,
    tokens: true,
    options: OPTIONS,
  });
  for (const token of tokens) {
    if (token.kind !== 'option') continue;
    const known = Object.hasOwn(OPTIONS, token.name)
      ? OPTIONS[token.name as keyof typeof OPTIONS]
      : undefined;
    if (!known) throw new UsageError(`unknown option ${token.rawName}`);
    if (known.type === 'string' && (token.value === undefined || token.value === '')) {
      throw new UsageError(`${token.rawName} needs a value`);
    }
    if (known.type === 'boolean' && token.value !== undefined) {
      throw new UsageError(`${token.rawName} takes no value`);
    }
  }
  const configOption = values.config;
  const configFile =
    (typeof configOption === 'string' ? configOption : undefined) ?? env.WSGATE_CONFIG ?? 'wsgate.yaml';
  if (values.help) return { command: 'help', configFile };
  if (values.version) return { command: 'version', configFile };
  if (positionals.length === 0) return { command: 'run', configFile };
  if (positionals.length === 1 && positionals[0] === 'check') return { command: 'check', configFile };
  if (positionals.length === 1 && positionals[0] === 'reload') return { command: 'reload', configFile };
  throw new UsageError(`unknown command "${positionals.join(' ')}"`);
}

/**
 * npm starts a command through a shell; where the shell stays in between (`npx wsgate`), a
 * SIGTERM to npm stops the shell and leaves the gateway running with no parent. When started by
 * npm, the gateway checks every second whether its parent is still the one that started it.
 */
function watchNpmParent(env: NodeJS.ProcessEnv, log: Logger, onGone: () => void): void {
  if (env.npm_command === undefined) return;
  const parent = process.ppid;
  const timer = setInterval(() => {
    if (process.ppid === parent) return;
    clearInterval(timer);
    log.warn({ parent }, 'the process that started wsgate (under npm) is gone, shutting down');
    onGone();
  }, 1_000);
  timer.unref();
}

async function run(configFile: string, version: string): Promise<number> {
  const text = readConfigText(configFile);
  const config = parseConfigFileText(configFile, text, process.env);
  const log = createLogger({ level: config.log.level, format: config.log.format });
  const instance =
    workerCount(config) > 1
      ? supervisor(configFile, text, config, log)
      : singleInstance(configFile, text, config, log, version);
  const watch = new ConfigWatch(configFile, log, () => void reload(), text);
  const reload = async (): Promise<ReloadOutcome> => {
    const outcome = await instance.reload();
    watch.seen(instance.lastRead());
    watch.follow(instance.reloadSettings());
    return outcome;
  };
  const exitCode = new Promise<number>((resolve) => {
    const stop = (immediate: boolean): void => {
      instance.shutdown({ immediate }).then(
        () => resolve(0),
        (error: unknown) => {
          log.error({ err: error }, 'shutdown failed');
          resolve(1);
        },
      );
    };
    let first: { readonly signal: NodeJS.Signals; readonly at: number } | undefined;
    const onSignal = (signal: NodeJS.Signals): void => {
      const at = performance.now();
      if (first !== undefined) {
        // A Ctrl-C under npm arrives twice, from the terminal and forwarded by npm: one request.
        if (signal === 'SIGINT' && first.signal === 'SIGINT' && at - first.at < DUPLICATE_SIGNAL_MS) {
          log.debug({ signal }, 'the same Ctrl-C again at once, taken as one');
          return;
        }
        // Ctrl-C while SIGTERM's drain delay runs: start draining now rather than abandon it.
        if (signal === 'SIGINT' && instance.phase() === 'stopping') {
          log.info({ signal }, 'draining now, without waiting for the rest of the drain delay');
          first = { signal, at };
          stop(true);
          return;
        }
        log.warn({ signal }, 'second signal, exiting now');
        process.exit(1);
      }
      first = { signal, at };
      log.info({ signal }, 'shutting down');
      stop(signal === 'SIGINT');
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
    process.on('SIGHUP', () => {
      log.info({ signal: 'SIGHUP', config: configFile }, 'reloading the configuration');
      void reload();
    });
    watchNpmParent(process.env, log, () => {
      first ??= { signal: 'SIGTERM', at: performance.now() };
      stop(false);
    });
  });
  process.on('uncaughtException', (error) => {
    log.fatal({ err: error }, 'uncaught exception, exiting');
    process.exit(1);
  });
  try {
    await instance.start();
  } catch (error) {
    log.fatal({ err: error }, 'could not start');
    return 1;
  }
  watch.follow(config.reload);
  log.info({ version, config: configFile }, 'wsgate started');
  const code = await exitCode;
  watch.close();
  return code;
}

async function main(): Promise<number> {
  // A worker of a fleet: the supervisor forked this process and tells it what to run.
  if (cluster.isWorker) return runWorker(packageVersion(), process.env.WSGATE_WORKER ?? '?');
  let invocation: Invocation;
  try {
    invocation = parseInvocation(process.argv.slice(2), process.env);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    write(process.stderr, `wsgate: ${error.message}\n\n${HELP}`);
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
      case 'reload':
        return await requestReload(invocation.configFile, loadConfigFile(invocation.configFile, process.env));
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
