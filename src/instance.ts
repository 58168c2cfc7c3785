/**
 * What the `wsgate` command runs: one gateway with its admin server in this process, or (with
 * `workers` above 1) a supervisor of worker processes (src/workers/). Either way the command
 * starts it, reloads it, and drains it on a signal through this one interface.
 */
import { type AdminListener, listenAdmin } from './admin/admin-server.ts';
import { parseConfigFileText, readConfigText } from './config/load.ts';
import type { Config } from './config/schema.ts';
import { adminOptions, createGateway } from './gateway.ts';
import type { Phase, ReloadOutcome, ShutdownOptions } from './lifecycle.ts';
import type { Logger } from './observability/logger.ts';

export interface Instance {
  /** Binds everything; rejects (having closed what was bound) on failure. */
  start(): Promise<void>;
  /** Drains and closes; safe to call again (`immediate` cuts a running drain delay short). */
  shutdown(options?: ShutdownOptions): Promise<void>;
  phase(): Phase;
  /** Loads the configuration file again and puts it in force, or changes nothing. */
  reload(): Promise<ReloadOutcome>;
  /** The `reload` settings of the configuration in force (whether to watch the file). */
  reloadSettings(): Config['reload'];
  /** The text the last load read from the file, valid or not. */
  lastRead(): string;
}

/** One gateway and its admin server, in this process. */
export function singleInstance(
  configFile: string,
  text: string,
  config: Config,
  log: Logger,
  version: string,
): Instance {
  const gateway = createGateway(config, { log, version });
  let read = text;
  const reload = (): Promise<ReloadOutcome> =>
    gateway.reload(() => {
      read = readConfigText(configFile);
      return parseConfigFileText(configFile, read, process.env);
    });
  let admin: AdminListener | undefined;
  return {
    async start() {
      try {
        await gateway.start();
        if (config.admin.enabled) {
          admin = await listenAdmin(
            adminOptions(gateway, log, reload),
            config.admin.address,
            config.admin.port,
          );
        }
      } catch (error) {
        await gateway.shutdown({ immediate: true });
        throw error;
      }
    },
    async shutdown(options) {
      await gateway.shutdown(options);
      await admin?.close();
    },
    phase: () => gateway.phase(),
    reload,
    reloadSettings: () => gateway.config().reload,
    lastRead: () => read,
  };
}
