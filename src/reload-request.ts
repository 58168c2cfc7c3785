/**
 * `wsgate reload`: asks the gateway running with a configuration to load its file again, through
 * its admin server (`POST /reload`, which answers only this machine), and prints how it ended.
 * The file is validated here first, so its problems are shown at once, with their lines.
 * Exit status: 0 in force (or nothing changed), 1 refused or no gateway answering, 2 invalid here.
 */
import type { Config } from './config/schema.ts';
import type { ReloadOutcome } from './lifecycle.ts';

/** Longest wait for the answer: the reload itself waits for the first DNS lookups of new pools. */
const ANSWER_TIMEOUT_MS = 60_000;

/** The admin server's address as a client on this machine reaches it. */
function adminUrl(config: Config): string {
  const { address, port } = config.admin;
  const host =
    address === '0.0.0.0'
      ? '127.0.0.1'
      : address === '::'
        ? '[::1]'
        : address.includes(':')
          ? `[${address}]`
          : address;
  return `http://${host}:${port}/reload`;
}

export async function requestReload(configFile: string, config: Config): Promise<number> {
  if (!config.admin.enabled) {
    process.stderr.write(
      `wsgate: ${configFile} turns the admin server off; send SIGHUP to the gateway instead\n`,
    );
    return 1;
  }
  const url = adminUrl(config);
  let answer: Response;
  try {
    answer = await fetch(url, { method: 'POST', signal: AbortSignal.timeout(ANSWER_TIMEOUT_MS) });
  } catch (error) {
    const cause =
      error instanceof Error && error.cause instanceof Error ? error.cause.message : String(error);
    process.stderr.write(`wsgate: no gateway answers at ${url}: ${cause}\n`);
    return 1;
  }
  const text = await answer.text();
  if (!answer.headers.get('content-type')?.includes('json')) {
    process.stderr.write(`wsgate: ${url} answered ${answer.status}: ${text.trim()}\n`);
    return 1;
  }
  const outcome = JSON.parse(text) as ReloadOutcome;
  if (outcome.result === 'ok' || outcome.result === 'unchanged') {
    const note = outcome.result === 'unchanged' ? ' (nothing changed)' : '';
    process.stdout.write(`wsgate: configuration ${outcome.hash} in force${note}\n`);
    for (const setting of outcome.needsRestart ?? []) {
      process.stdout.write(`wsgate: ${setting} changed; it takes effect at the next start\n`);
    }
    return 0;
  }
  process.stderr.write(
    `wsgate: reload ${outcome.result}; configuration ${outcome.hash} stays in force\n${outcome.error ?? ''}\n`,
  );
  return 1;
}
