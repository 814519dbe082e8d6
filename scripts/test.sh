#!/usr/bin/env bash
# The test command (`npm test`): installs what the tests need, then runs every test.
#   npm dependencies → a Docker engine (scripts/ensure-docker.sh) → local test images → build → vitest.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  # npm install (not npm ci): it honours package-lock.json, and npm 11 here rejects its own lock in `npm ci`
  # (platform-optional packages of rollup are left out of the lock).
  npm install --no-audit --no-fund
fi
bash scripts/ensure-docker.sh
bash scripts/build-images.sh all
npm run build --silent
exec npx vitest run "$@"
