#!/usr/bin/env bash
# The metrics sampler's cost: the server's CPU time over a window with N running sandboxes, sampled at each
# interval in INTERVALS ("off" = 24h, so neither the sampler nor the console copier runs in the window), on one
# server restarted between intervals (the sandboxes keep running and are re-adopted), and the sampler's own
# per-pass time from the server's /metrics (capsule_metrics_sampler_pass_seconds). Prints a markdown table and
# writes it to $BENCH_OUT when set.
#
#   bench/observability/run.sh          (as root; builds nothing: run ./mvnw -q -B -DskipTests package first)
#
# Environment: SANDBOXES (default 50), WINDOW (seconds measured per interval, default 60), SETTLE (seconds after a
# restart before measuring, default 20), INTERVALS (default "off 5s 1s"), BENCH_OUT, CAPSULE_CACHE_DIR.
#
# The server runs through scripts/server-for-tests.sh with its own runc root and sandbox network (so it cannot
# touch another capsule server on this host) and a state directory under a temp dir; on exit, failure included,
# its sandboxes are killed through the API, the server is stopped by pid and the temp dir removed.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
SANDBOXES=${SANDBOXES:-50}
WINDOW=${WINDOW:-60}
SETTLE=${SETTLE:-20}
INTERVALS=${INTERVALS:-"off 5s 1s"}
log() { echo "bench: $*" >&2; }
die() { log "$*"; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (runc and the server's network need it)"
[ -f "$repo/cli/target/capsule.jar" ] || die "build first: ./mvnw -q -B -DskipTests package"

work=$(mktemp -d /tmp/capsule-obs-bench.XXXXXX)
export CAPSULE_STATE_ROOT=$work
export CAPSULE_RUNC_ROOT=$work/runc
export CAPSULE_NETWORK_NAME=capobsbench
export CAPSULE_NETWORK_INTERFACE_PREFIX=cob
export CAPSULE_NETWORK_POOL=10.212.0.0/20
port=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
harness="$repo/scripts/server-for-tests.sh"
args() { echo "--warm-pool-size 0 --max-timeout 7200 --metrics-interval $([ "$1" = off ] && echo 24h || echo "$1")"; }

cleanup() {
    "$harness" stop --port "$port" >&2 || log "the harness reported leftovers (another server's namespaces count too); see above"
    runc --root "$CAPSULE_RUNC_ROOT" list -q 2>/dev/null | grep -q . && log "LEFT: runc containers in $CAPSULE_RUNC_ROOT"
    ip netns list | grep -q "^$CAPSULE_NETWORK_NAME-" && log "LEFT: network namespaces $CAPSULE_NETWORK_NAME-*"
    rm -rf "$work"
}
trap cleanup EXIT

first=${INTERVALS%% *}
CAPSULE_SERVER_ARGS="$(args "$first")" "$harness" start --port "$port" >"$work/env"
# shellcheck disable=SC1091
source "$work/env"
log "creating $SANDBOXES sandboxes"
node --input-type=module -e '
  const api = process.env.E2B_API_URL, headers = { "X-API-Key": process.env.E2B_API_KEY, "Content-Type": "application/json" }
  const n = Number(process.argv[1]); let made = 0
  async function one() {
    for (let attempt = 1; ; attempt++) {
      const r = await fetch(`${api}/v2/sandboxes`, { method: "POST", headers, body: JSON.stringify({ templateID: "base", timeout: 7200 }) })
      if (r.status === 201) return made++
      if (attempt === 3) throw new Error(`create: ${r.status} ${await r.text()}`)
    }
  }
  const queue = Array.from({ length: n }, (_, i) => i)
  await Promise.all(Array.from({ length: 4 }, async () => { while (queue.length) { queue.pop(); await one() } }))
  console.error(`bench: ${made} sandboxes running`)
' "$SANDBOXES"

ticks=$(getconf CLK_TCK)
cpu_seconds() { awk -v t="$ticks" '{ sub(/^.*\) /, ""); print ($12 + $13) / t }' "/proc/$1/stat"; }
pass_stats() { curl -s "http://127.0.0.1:$port/metrics" | awk '/^capsule_metrics_sampler_pass_seconds_count/ {c=$2} /^capsule_metrics_sampler_pass_seconds_sum/ {s=$2} END {printf "%d %.6f\n", c, s}'; }

rows=()
for interval in $INTERVALS; do
    if [ ${#rows[@]} -gt 0 ]; then
        CAPSULE_SERVER_ARGS="$(args "$interval")" "$harness" restart --port "$port" >/dev/null
    fi
    pid=$(cat "$work/capsule-server-tests-$port/pid")
    log "interval $interval: settling ${SETTLE}s, then measuring ${WINDOW}s (server pid $pid)"
    sleep "$SETTLE"
    read -r c0 s0 < <(pass_stats)
    t0=$(cpu_seconds "$pid")
    sleep "$WINDOW"
    t1=$(cpu_seconds "$pid")
    read -r c1 s1 < <(pass_stats)
    rows+=("$(awk -v iv="$interval" -v t0="$t0" -v t1="$t1" -v w="$WINDOW" -v c="$((c1 - c0))" -v s0="$s0" -v s1="$s1" -v n="$SANDBOXES" 'BEGIN {
        cpu = t1 - t0; perpass = "-"; persandbox = "-"
        if (c > 0) { pass = (s1 - s0) / c * 1000; perpass = sprintf("%.1f", pass); persandbox = sprintf("%.2f", pass / n) }
        printf "| %s | %.2f | %.1f %% | %d | %s | %s |", iv, cpu, cpu / w * 100, c, perpass, persandbox }')")
done

table="Server CPU with $SANDBOXES running sandboxes over ${WINDOW} s per sampling interval ($(nproc) cores, $(date -u +%Y-%m-%d)):

| sampling interval | server CPU time (s) | of one core | sampler passes | wall time per pass (ms) | per sandbox (ms) |
|---|---|---|---|---|---|
$(printf '%s\n' "${rows[@]}")"
echo "$table"
[ -z "${BENCH_OUT:-}" ] || echo "$table" >"$BENCH_OUT"
