#!/usr/bin/env node
/**
 * The `wsgate` executable. It only checks the Node.js version against package.json's
 * `engines.node`, with a message a person can act on, before loading anything that needs a newer
 * one; the command itself is in command.ts.
 */
import { readPackageInfo, satisfiesMinimum } from './package-info.ts';

const { nodeRange, minimumNode } = readPackageInfo();

if (!satisfiesMinimum(process.versions.node, minimumNode)) {
  process.stderr.write(
    `wsgate needs Node.js ${nodeRange.replace(/^>=\s*/, '')} or newer; this is ${process.version}.\n`,
  );
  process.exit(1);
} else {
  const { runCommand } = await import('./command.ts');
  runCommand();
}
