#!/usr/bin/env bash
# Persistence figures of capsule on this machine, through the E2B API (raw HTTP) and the official e2b SDK:
#   - pause and resume (connect) of a running sandbox, p50/p95, with memory (freeze) and without (stop, cold boot);
#   - the driver's freeze and thaw on their own: `runc pause` + `sync -f` of the upper dir, and `runc resume`, which is
#     what the oci driver runs for them, timed by this script on the bench server's own runc root;
#   - snapshot time for 1, 10 and 100 MiB written since the sandbox started;
#   - time to interactive of a sandbox created from a snapshot (create to the first command's output), beside a
#     cold create from the base template (no warm pool: snapshots have none) in the same run.
# Prints the markdown table and writes it to $BENCH_OUT when set.
#
#   bench/persistence/run.sh            (as root; needs runc and a built base template in the template cache)
#
# Environment: ROUNDS (pause/resume cycles and creates per series, default 50), SNAPSHOT_ROUNDS (snapshots per size,
# default 5), BENCH_OUT (file for the table), CAPSULE_CACHE_DIR (template cache, default /var/cache/capsule).
#
# It starts one capsule server (fresh data dir, free port, its own runc root and sandbox network, so it cannot touch
# another capsule server on this host), stops it by pid on exit, failure included, checks that nothing it made is
# left, and removes its temp dir.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
export ROUNDS=${ROUNDS:-50}
export SNAPSHOT_ROUNDS=${SNAPSHOT_ROUNDS:-5}
export JAVA_HOME=${JAVA_HOME:-/usr/lib/jvm/temurin-25-jdk-amd64}
export CAPSULE_CACHE_DIR=${CAPSULE_CACHE_DIR:-/var/cache/capsule}
BENCH_OUT=${BENCH_OUT:+$(realpath -m "$BENCH_OUT")} # the script changes directory below

log() { echo "bench: $*" >&2; }
die() { log "$*"; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (runc and capsule's runtime need it)"
command -v runc >/dev/null || die "runc is missing; install it with: apt-get install runc"
ls -d "$CAPSULE_CACHE_DIR"/templates/base-*/rootfs >/dev/null 2>&1 \
    || die "no base template in $CAPSULE_CACHE_DIR/templates; start 'bin/capsule server' once to build it"
if [ ! -f "$repo/cli/target/capsule.jar" ]; then
    log "building the server (cli/target/capsule.jar is missing)"
    (cd "$repo" && ./mvnw -q -B -DskipTests package)
fi
[ -d "$here/node_modules/e2b" ] || (cd "$here" && npm ci --no-audit --no-fund)

work=$(mktemp -d /tmp/capsule-bench-persistence.XXXXXX)
export BENCH_RESULTS=$work/results.jsonl
export CAPSULE_RUNC_ROOT=$work/capsule-runc
export CAPSULE_NETWORK_NAME=capsulepers
export CAPSULE_NETWORK_INTERFACE_PREFIX=cpn
export CAPSULE_NETWORK_POOL=10.214.0.0/20
server_pid=

cleanup() {
    local rc=$?
    set +e
    trap - EXIT INT TERM
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid"
        for _ in $(seq 600); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$server_pid" 2>/dev/null && { log "server did not stop in 60 s; killing it"; kill -KILL "$server_pid"; }
    fi
    local leaks=()
    for id in $(runc --root "$CAPSULE_RUNC_ROOT" list -q 2>/dev/null); do
        leaks+=("capsule container $id"); runc --root "$CAPSULE_RUNC_ROOT" delete -f "$id"
    done
    for ns in $(ip netns list | awk '{print $1}' | grep "^$CAPSULE_NETWORK_NAME-"); do
        leaks+=("netns $ns"); ip netns del "$ns"
    done
    for m in $(awk -v w="$work/" 'index($2, w) == 1 {print $2}' /proc/mounts | sort -r); do
        leaks+=("mount $m"); umount -l "$m"
    done
    if [ -n "$(ip -o link | grep -o ": $CAPSULE_NETWORK_INTERFACE_PREFIX[0-9]*[:@]")" ]; then leaks+=("veths $CAPSULE_NETWORK_INTERFACE_PREFIX*"); fi
    if nft list table inet "$CAPSULE_NETWORK_NAME" >/dev/null 2>&1; then leaks+=("nftables table inet $CAPSULE_NETWORK_NAME"); fi
    [ -f "$BENCH_RESULTS" ] && mkdir -p "$repo/target" && cp "$BENCH_RESULTS" "$repo/target/capsule-bench-persistence-last.jsonl"
    rm -rf "$work"
    [ -e "$work" ] && leaks+=("temp dir $work")
    if [ ${#leaks[@]} -gt 0 ]; then
        log "LEFT BEHIND (now removed where possible): ${leaks[*]}"
        [ $rc = 0 ] && rc=1
    else
        log "clean: no containers, namespaces, veths, mounts or temp files left"
    fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
data=$work/data
log "starting capsule server on 127.0.0.1:$port (no warm pool, runc root $CAPSULE_RUNC_ROOT)"
"$repo/bin/capsule" server --host 127.0.0.1 --port "$port" --data-dir "$data" --warm-pool-size 0 \
    --max-timeout 3600 >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1200); do
    [ -f "$data/api-key" ] && curl -sf "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
done
curl -sf "http://127.0.0.1:$port/health" >/dev/null 2>&1 || { tail -30 "$work/server.log" >&2; die "capsule server did not start"; }
log "pause mode: $(curl -s "http://127.0.0.1:$port/health/details")"

cd "$here"
E2B_API_KEY=$(cat "$data/api-key") E2B_API_URL="http://localhost:$port" E2B_SANDBOX_URL="http://localhost:$port" \
    CAPSULE_DATA_DIR="$data" node bench.mjs measure \
    || { grep -v '^\s*at ' "$work/server.log" | tail -30 >&2; exit 1; }
kill -TERM "$server_pid"; wait "$server_pid" 2>/dev/null || true
server_pid=

table=$(node bench.mjs report "$BENCH_RESULTS")
echo "$table"
[ -z "${BENCH_OUT:-}" ] || echo "$table" >"$BENCH_OUT"
