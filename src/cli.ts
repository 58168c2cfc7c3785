#!/usr/bin/env node
/**
 * The `wsgate` executable. It only checks the Node.js version, with a message a person can act
 * on, before loading anything that needs a newer one; the command itself is in command.ts.
 */
const MINIMUM_MAJOR = 22;
const major = Number(process.versions.node.split('.')[0]);

if (major < MINIMUM_MAJOR) {
  process.stderr.write(`wsgate needs Node.js ${MINIMUM_MAJOR} or newer; this is ${process.version}.\n`);
  process.exit(1);
} else {
  const { runCommand } = await import('./command.ts');
  runCommand();
}
