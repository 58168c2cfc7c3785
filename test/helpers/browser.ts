/**
 * Where the machine's Chromium is, for the tests that drive a real browser (through
 * playwright-core); undefined when none is installed, and those tests skip their browser part.
 */
import { spawnSync } from 'node:child_process';

export const CHROMIUM: string | undefined = ['chromium', 'chromium-browser', 'google-chrome']
  .map((name) => spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' }).stdout.trim())
  .find((path) => path !== '');
