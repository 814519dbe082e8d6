#!/usr/bin/env bash
# The test command (`npm test`): installs what the tests need, then runs every test.
#   npm dependencies → a Docker engine (scripts/ensure-docker.sh) → PostgreSQL (scripts/ensure-postgres.sh;
#   the store suites run on it too, in databases deqo_pg_* created on DEQO_TEST_PG_URL) → local test images →
#   Debian chromium (scripts/ensure-chromium.sh, for the dashboard e2e) → build (server and web app) → lint and
#   format check → vitest.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  # npm install (not npm ci): it honours package-lock.json, and npm 11 here rejects its own lock in `npm ci`
  # (platform-optional packages of rollup are left out of the lock).
  npm install --no-audit --no-fund
fi
bash scripts/ensure-docker.sh
export DEQO_TEST_PG_URL="${DEQO_TEST_PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
bash scripts/ensure-postgres.sh
bash scripts/build-images.sh all
bash scripts/ensure-chromium.sh
npm run build --silent
# Lint (typescript-eslint, import cycles, parts' entry points) and formatting (Prettier): a problem fails the run.
npm run lint --silent
mkdir -p test-artifacts
status=0
npx vitest run --reporter=default --reporter=json --outputFile.json=test-artifacts/vitest.json "$@" || status=$?
# A plain closing line for CI: "N passed, N failed".
node -e 'const r=JSON.parse(require("fs").readFileSync("test-artifacts/vitest.json","utf8"));
  console.log(`${r.numPassedTests} passed, ${r.numFailedTests} failed` + (r.numPendingTests ? `, ${r.numPendingTests} skipped` : ""))' || true
exit $status
