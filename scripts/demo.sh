#!/usr/bin/env bash
# The demo command (`npm run demo`): installs and builds what is needed, then runs `deqo demo`:
# a local network (coordinator + 3 agents) runs a verified SVM sweep on the UCI digits and prints the results.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  # npm install (not npm ci): it honours package-lock.json, and npm 11 here rejects its own lock in `npm ci`
  # (platform-optional packages of rollup are left out of the lock).
  npm install --no-audit --no-fund
fi
npm run build --silent
if ! docker info >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then bash scripts/ensure-docker.sh || exit 69
  else node bin/deqo.js demo "$@"; exit $?   # prints what is missing and how to fix it
  fi
fi
exec node bin/deqo.js demo "$@"
