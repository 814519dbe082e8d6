#!/usr/bin/env node
// Entry point of the `deqo` command; the CLI itself lives in src/cli (compiled to dist/cli).
import('../dist/cli/main.js').catch((err) => {
  if (err && err.code === 'ERR_MODULE_NOT_FOUND' && String(err.message).includes('dist/cli/main.js')) {
    console.error('deqo is not built yet: run `npm run build` in the project folder first.');
    process.exit(70);
  }
  throw err;
});
