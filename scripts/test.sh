#!/usr/bin/env bash
# The test command (`npm test`): installs what the tests need, then runs every test.
#   npm dependencies → a Docker engine (scripts/ensure-docker.sh) → local test images → build → vitest.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
bash scripts/ensure-docker.sh
bash scripts/build-images.sh all
npm run build --silent
exec npx vitest run "$@"
