#!/usr/bin/env bash
# Time to interactive — create to the first command's output — of capsule (official e2b SDK against
# `bin/capsule server`, without and with the warm pool), `docker run` (Debian's docker.io, image imported from the
# base template's rootfs) and bare `runc run` of the same rootfs, in one run on this machine. Prints the markdown
# table and writes it to $BENCH_OUT when set.
#
#   bench/sandboxes/run.sh                 (as root; needs runc, docker.io's /usr/bin/docker and /usr/sbin/dockerd)
#
# Environment: ROUNDS (samples per series, default 50), CONCURRENCY (default 10), POOLS (warm pool sizes to measure,
# default "0 2 10"), BENCH_OUT (file for the table), CAPSULE_CACHE_DIR (template cache, default /var/cache/capsule).
#
# Everything it starts is its own and stopped by pid on exit, failure included: one dockerd (own data root, exec
# root, socket and pidfile under a temp dir, no iptables, no bridge), one capsule server at a time (fresh data dir,
# free port, its own runc root and sandbox network so it cannot touch another capsule server on this host), runc
# containers under a private runc root. At the end it checks that none of it is left and removes the temp dir.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
ROUNDS=${ROUNDS:-50}
CONCURRENCY=${CONCURRENCY:-10}
POOLS=${POOLS:-"0 2 10"}
DOCKER=/usr/bin/docker     # Debian's client: /usr/local/bin/docker on PATH is another one
DOCKERD=/usr/sbin/dockerd
export JAVA_HOME=${JAVA_HOME:-/usr/lib/jvm/temurin-25-jdk-amd64}
cache=${CAPSULE_CACHE_DIR:-/var/cache/capsule}

log() { echo "bench: $*" >&2; }
die() { log "$*"; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (runc, dockerd and capsule's runtime need it)"
[ -x "$DOCKER" ] && [ -x "$DOCKERD" ] || die "Debian's docker is missing; install it with: apt-get install docker.io"
command -v runc >/dev/null || die "runc is missing; install it with: apt-get install runc"
rootfs=$(ls -d "$cache"/templates/base-*/rootfs 2>/dev/null | head -1)
[ -n "$rootfs" ] || die "no base template in $cache/templates; start 'bin/capsule server' once to build it"
if [ ! -f "$repo/cli/target/capsule.jar" ]; then
    log "building the server (cli/target/capsule.jar is missing)"
    (cd "$repo" && ./mvnw -q -B -DskipTests package)
fi
[ -d "$here/node_modules/e2b" ] || (cd "$here" && npm ci --no-audit --no-fund)

work=$(mktemp -d /tmp/capsule-bench.XXXXXX)
results=$work/results.jsonl
export BENCH_RESULTS=$results
# capsule's own runc root and network: a server's start removes every sandbox in its runc root and every network
# of its name that its data dir does not know, which would be another server's (see ServerCommand.isolated).
export CAPSULE_RUNC_ROOT=$work/capsule-runc
export CAPSULE_NETWORK_NAME=capsulebench
export CAPSULE_NETWORK_INTERFACE_PREFIX=cbn
export CAPSULE_NETWORK_POOL=10.213.0.0/20
runc_root=$work/runc-root
dockerd_pid=
server_pid=

stop_pid() { # pid, name, seconds to wait after TERM before KILL
    local pid=$1 name=$2 wait=${3:-30}
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq $((wait * 10))); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
    log "$name (pid $pid) did not stop in ${wait}s; killing it"
    kill -KILL "$pid" 2>/dev/null || true
}

cleanup() {
    local rc=$?
    set +e
    trap - EXIT INT TERM
    if [ -n "$server_pid" ]; then stop_pid "$server_pid" "capsule server" 60; fi
    if [ -n "$dockerd_pid" ]; then stop_pid "$dockerd_pid" dockerd 30; fi
    local leaks=()
    # capsule: its server kills pool sandboxes when it stops; the bench killed the rest through the API
    for id in $(runc --root "$CAPSULE_RUNC_ROOT" list -q 2>/dev/null); do
        leaks+=("capsule container $id")
        runc --root "$CAPSULE_RUNC_ROOT" delete -f "$id"
    done
    for ns in $(ip netns list | awk '{print $1}' | grep "^$CAPSULE_NETWORK_NAME-"); do
        leaks+=("netns $ns"); ip netns del "$ns"
    done
    for id in $(runc --root "$runc_root" list -q 2>/dev/null); do
        leaks+=("runc container $id"); runc --root "$runc_root" delete -f "$id"
    done
    # containerd-shims of our dockerd live on if containers were left; they carry our exec root in their args
    for pid in $(pgrep -f -- "$work/" || true); do
        [ "$pid" = $$ ] && continue
        leaks+=("process $pid: $(tr '\0' ' ' </proc/"$pid"/cmdline 2>/dev/null | cut -c1-120)")
        kill -KILL "$pid" 2>/dev/null
    done
    for m in $(awk -v w="$work/" 'index($2, w) == 1 {print $2}' /proc/mounts | sort -r); do
        leaks+=("mount $m"); umount -l "$m"
    done
    if [ -n "$(ip -o link | grep -o ": $CAPSULE_NETWORK_INTERFACE_PREFIX[0-9]*[:@]")" ]; then leaks+=("veths $CAPSULE_NETWORK_INTERFACE_PREFIX*"); fi
    if nft list table inet "$CAPSULE_NETWORK_NAME" >/dev/null 2>&1; then leaks+=("nftables table inet $CAPSULE_NETWORK_NAME"); fi
    [ -f "$results" ] && mkdir -p "$repo/target" && cp "$results" "${BENCH_KEEP_RESULTS:-$repo/target/capsule-bench-last.jsonl}"
    rm -rf "$work"
    [ -e "$work" ] && leaks+=("temp dir $work")
    if [ ${#leaks[@]} -gt 0 ]; then
        log "LEFT BEHIND (now removed where possible): ${leaks[*]}"
        [ $rc = 0 ] && rc=1
    else
        log "clean: no containers, namespaces, veths, mounts, processes or temp files left"
    fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# ---- docker ------------------------------------------------------------------------------------------------------
mkdir -p "$work/docker"
echo '{}' >"$work/docker/daemon.json"
sock=$work/docker/docker.sock
log "starting dockerd (data root $work/docker/data)"
"$DOCKERD" --config-file "$work/docker/daemon.json" --data-root "$work/docker/data" --exec-root "$work/docker/exec" \
    --pidfile "$work/docker/dockerd.pid" -H "unix://$sock" --iptables=false --ip-forward=false --ip-masq=false \
    --bridge=none --userland-proxy=false >"$work/docker/dockerd.log" 2>&1 &
dockerd_pid=$!
docker() { "$DOCKER" -H "unix://$sock" "$@"; }
for _ in $(seq 300); do docker version >/dev/null 2>&1 && break; kill -0 "$dockerd_pid" 2>/dev/null || break; sleep 0.1; done
docker version >/dev/null 2>&1 || { tail -20 "$work/docker/dockerd.log" >&2; die "dockerd did not start"; }
log "docker import of $rootfs ($(docker info --format '{{.Driver}}') storage driver)"
import_start=$(date +%s%N)
tar -C "$rootfs" -c . | docker import - capsule-bench-base:latest >/dev/null
log "imported in $(( ($(date +%s%N) - import_start) / 1000000 )) ms"

# ---- runc bundle: runc spec, echo hi, the template rootfs read-only (nothing is written to it) -------------------
mkdir -p "$work/runc-bundle" "$runc_root"
(cd "$work/runc-bundle" && runc spec)
python3 - "$work/runc-bundle/config.json" "$rootfs" <<'EOF'
import json, sys
path, rootfs = sys.argv[1], sys.argv[2]
c = json.load(open(path))
c['process']['terminal'] = False
c['process']['args'] = ['echo', 'hi']
c['root'] = {'path': rootfs, 'readonly': True}
json.dump(c, open(path, 'w'), indent=1)
EOF

cd "$here"
for c in 1 "$CONCURRENCY"; do
    node bench.mjs exec "docker run" "$ROUNDS" "$c" -- "$DOCKER" -H "unix://$sock" run --rm --network none capsule-bench-base echo hi
    node bench.mjs exec "runc run" "$ROUNDS" "$c" -- runc --root "$runc_root" run -b "$work/runc-bundle" "bench-{i}"
done
[ -z "$(docker ps -aq)" ] || die "docker containers left: $(docker ps -aq)"
stop_pid "$dockerd_pid" dockerd 30
dockerd_pid=

# ---- capsule -----------------------------------------------------------------------------------------------------
for pool in $POOLS; do
    data=$work/capsule-pool$pool
    port=$(free_port)
    log "starting capsule server on 127.0.0.1:$port with --warm-pool-size $pool"
    "$repo/bin/capsule" server --host 127.0.0.1 --port "$port" --data-dir "$data" --warm-pool-size "$pool" \
        >"$work/server-pool$pool.log" 2>&1 &
    server_pid=$!
    for _ in $(seq 1200); do
        [ -f "$data/api-key" ] && curl -sf "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.1
    done
    curl -sf "http://127.0.0.1:$port/health" >/dev/null 2>&1 || { tail -30 "$work/server-pool$pool.log" >&2; die "capsule server did not start"; }
    label="capsule, no pool"
    [ "$pool" = 0 ] || label="capsule, pool $pool"
    for c in 1 "$CONCURRENCY"; do
        E2B_API_KEY=$(cat "$data/api-key") E2B_API_URL="http://localhost:$port" E2B_SANDBOX_URL="http://localhost:$port" \
            CAPSULE_DATA_DIR="$data" node bench.mjs capsule "$label" "$ROUNDS" "$c" "$pool" \
            || { grep -v '^\s*at ' "$work/server-pool$pool.log" | tail -30 >&2; exit 1; }
    done
    stop_pid "$server_pid" "capsule server" 60
    server_pid=
done

table=$(node bench.mjs report "$results")
echo "$table"
[ -z "${BENCH_OUT:-}" ] || echo "$table" >"$BENCH_OUT"
