#!/usr/bin/env bash
# Runs the envd benchmark: envd through the test harness (fixture user `user`, clean home), the official SDK as
# the client. Writes the table to stdout and to $BENCH_OUT when set.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
[ -d "$here/node_modules/e2b" ] || (cd "$here" && npm ci --no-audit --no-fund)
cd "$here"
exec "$repo/scripts/envd-sandboxed.sh" run -- node "$here/bench.mjs"
