#!/usr/bin/env node
// Entry point of the `deqo` command; the CLI itself lives in src/cli (compiled to dist/cli).
import { readFileSync, statSync } from 'node:fs';

// `deqo --help` prints the help the build saved from the CLI itself (`npm run build` writes dist/cli/help.txt from
// `deqo --help`), without loading the CLI: a few ms instead of every command's modules. A file older than the CLI
// it came from is not used.
const args = process.argv.slice(2);
if (args.length === 1 && (args[0] === '--help' || args[0] === '-h')) {
  try {
    const help = new URL('../dist/cli/help.txt', import.meta.url);
    if (statSync(help).mtimeMs >= statSync(new URL('../dist/cli/main.js', import.meta.url)).mtimeMs) {
      process.stdout.write(readFileSync(help));
      process.exit(0);
    }
  } catch {
    // not built with it: the CLI prints its help itself
  }
}
import('../dist/cli/main.js').catch((err) => {
  if (err && err.code === 'ERR_MODULE_NOT_FOUND' && String(err.message).includes('dist/cli/main.js')) {
    console.error('deqo is not built yet: run `npm run build` in the project folder first.');
    process.exit(70);
  }
  throw err;
});
