/**
 * One worker of a supervised fleet (`workers` above 1): it waits for the configuration text from
 * the supervisor, runs a gateway on the listeners the fleet shares (the cluster module hands it
 * connections), and answers the supervisor: reloads with the text it is sent, reports of its
 * metrics and status, and the drain. Signals are the supervisor's to handle (a Ctrl-C reaches the
 * whole process group); a worker whose supervisor is gone drains and exits on its own.
 */
import { statusReport } from '../admin/status.ts';
import { parseConfigFileText } from '../config/load.ts';
import { createGateway, type Gateway } from '../gateway.ts';
import { createLogger, type Logger } from '../observability/logger.ts';
import { type ConfigText, type FromWorker, isMessage, type ToWorker } from './messages.ts';

function send(message: FromWorker): void {
  process.send?.(message);
}

/** The configuration to start with, or undefined when told to stop before starting. */
function firstStart(): Promise<ConfigText | undefined> {
  return new Promise((resolve) => {
    const onMessage = (message: unknown): void => {
      if (!isMessage<ToWorker>(message) || (message.kind !== 'start' && message.kind !== 'shutdown')) return;
      process.off('message', onMessage);
      resolve(message.kind === 'start' ? message : undefined);
    };
    process.on('message', onMessage);
  });
}

function answer(gateway: Gateway, log: Logger, message: ToWorker, stop: (immediate: boolean) => void): void {
  switch (message.kind) {
    case 'reload':
      void gateway
        .reload(() => parseConfigFileText(message.file, message.text, process.env))
        .then((outcome) => send({ kind: 'reloaded', id: message.id, outcome }));
      return;
    case 'ask':
      void gateway.metrics.registry.getMetricsAsJSON().then((metrics) =>
        send({
          kind: 'report',
          id: message.id,
          ready: gateway.isReady(),
          metrics,
          status: statusReport(gateway.status),
        }),
      );
      return;
    case 'ping':
      send({ kind: 'pong', id: message.id });
      return;
    case 'shutdown':
      stop(message.immediate);
      return;
    case 'start':
      log.warn('a second start message, ignored');
  }
}

/** Runs this worker until it has drained; resolves with its exit status. */
export async function runWorker(version: string, index: string): Promise<number> {
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => {});
  const start = await firstStart();
  if (start === undefined) return 0;
  const config = parseConfigFileText(start.file, start.text, process.env);
  const log = createLogger({ level: config.log.level, format: config.log.format }).child({ worker: index });
  process.on('uncaughtException', (error) => {
    log.fatal({ err: error }, 'uncaught exception, exiting (the supervisor starts another worker)');
    process.exit(1);
  });
  const gateway = createGateway(config, { log, version, reusePort: config.listenerSharing === 'reusePort' });
  let drained!: () => void;
  const done = new Promise<void>((resolve) => {
    drained = resolve;
  });
  // A second request (immediate) cuts the drain delay short; the drain itself runs once.
  const stop = (immediate: boolean): void => void gateway.shutdown({ immediate }).then(drained);
  process.on('message', (message: unknown) => {
    if (isMessage<ToWorker>(message)) answer(gateway, log, message, stop);
  });
  process.once('disconnect', () => {
    log.warn('the supervisor is gone; draining');
    stop(true);
  });
  try {
    await gateway.start();
  } catch (error) {
    send({ kind: 'failed', error: error instanceof Error ? error.message : String(error) });
    return 1;
  }
  send({ kind: 'started' });
  await done;
  return 0;
}
