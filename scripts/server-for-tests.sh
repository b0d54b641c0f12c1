#!/usr/bin/env bash
# Runs a real `bin/capsule server` (oci driver) for tests: fresh data directory, free port, the shared template
# cache (so the base template is built once per machine, not per run), and a leak check when it stops.
#
# Usage:
#   scripts/server-for-tests.sh run [--port P] -- CMD [ARG...]  start a server, run CMD, stop it; exit with CMD's code
#   scripts/server-for-tests.sh start [--port P]                start a server in the background, print its env
#   scripts/server-for-tests.sh restart --port P                stop the server by pid WITHOUT killing its sandboxes
#                                                               and start it again on the same data dir and port
#   scripts/server-for-tests.sh crash --port P                  as restart, but kill the server with SIGKILL (no
#                                                               shutdown at all), as a crash would
#   scripts/server-for-tests.sh reboot --port P                 simulate a host reboot: stop the server, remove every
#                                                               runc container, mount and network namespace of its
#                                                               sandboxes (their processes die, their files stay in
#                                                               the data dir), and start it again on the same data dir
#   scripts/server-for-tests.sh stop --port P                   kill its sandboxes through the API, stop it by pid,
#                                                               check nothing is left, remove its data directory
#
# CMD sees E2B_API_URL and E2B_SANDBOX_URL (http://localhost:P), E2B_API_KEY (the key the server made on its first
# start), CAPSULE_SERVER_PORT, CAPSULE_SERVER_PID, CAPSULE_SERVER_DATA_DIR and CAPSULE_SERVER_SCRIPT (this script,
# for tests that restart the server).
#
# `stop` fails (exit 1) when something is left behind: a runc container whose bundle is in the data directory, a
# QEMU process of the data directory (CAPSULE_SERVER_ARGS="--runtime microvm"), a new `capsule-<id>` (or, with
# several drivers, `capsule_<driver>-<id>`) network namespace, a mount under the data directory, or the nftables table `inet capsule` while no capsule container
# runs at all.
#
# Environment:
#   CAPSULE_CACHE_DIR       template cache shared by every run (default /var/cache/capsule)
#   CAPSULE_SERVER_LOG      server output (default <repo>/target/server-for-tests-<port>.log)
#   CAPSULE_HEALTH_WAIT     seconds to wait for GET /health (default 900: the first start on a machine builds the
#                           base template, minutes)
#   CAPSULE_STATE_ROOT      where the per-port state and data directories live (default /tmp)
#   CAPSULE_SERVER_ARGS     extra `capsule server` flags, e.g. "--max-timeout 600 --warm-pool-size 1"
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SELF="$REPO/scripts/server-for-tests.sh"
RUNC_ROOT=/run/capsule/runc

die() { echo "server-for-tests: $*" >&2; exit 2; }
say() { echo "server-for-tests: $*" >&2; }
usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | grep '^#' | sed 's/^# \{0,1\}//' >&2; exit 2; }

[ $# -ge 1 ] || usage
MODE="$1"; shift
PORT="" CMD=()
while [ $# -gt 0 ]; do
  case "$1" in
    --port) [ $# -ge 2 ] || die "--port needs a value"; PORT="$2"; shift 2 ;;
    --port=*) PORT="${1#--port=}"; shift ;;
    --) shift; CMD=("$@"); break ;;
    -h|--help) usage ;;
    *) die "unknown argument '$1'; see --help" ;;
  esac
done

STATE_ROOT="${CAPSULE_STATE_ROOT:-/tmp}"
HEALTH_WAIT="${CAPSULE_HEALTH_WAIT:-900}"
export CAPSULE_CACHE_DIR="${CAPSULE_CACHE_DIR:-/var/cache/capsule}"

free_port() {
  node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}
state_dir() { echo "$STATE_ROOT/capsule-server-tests-$PORT"; }
health_code() { curl -s -o /dev/null -m 2 -w '%{http_code}' "http://127.0.0.1:$PORT/health" 2>/dev/null || true; }
start_time() { sed -E 's/^.*\) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f20; }
# capsule_<driver>-<id>: a driver's share of the network on a server that runs several (--runtimes)
capsule_namespaces() { ip netns list 2>/dev/null | awk '{print $1}' | grep -E '^capsule(_[a-z]+)?-[a-z0-9]{20}$' | sort || true; }

# Starts the server on $PORT with the data directory $STATE/data (made by the caller) and waits for /health.
launch() {
  local state="$1" log="${CAPSULE_SERVER_LOG:-$REPO/target/server-for-tests-$PORT.log}"
  mkdir -p "$(dirname "$log")"
  local code; code="$(health_code)"
  [ "$code" = "000" ] || die "port $PORT already answers HTTP ($code on /health); stop whatever listens there"
  say "starting bin/capsule server --port $PORT --data-dir $state/data (cache $CAPSULE_CACHE_DIR, log $log)"
  # --metrics-interval 1s: the observability suite watches metrics change; CAPSULE_SERVER_ARGS may override it
  # shellcheck disable=SC2086
  setsid "$REPO/bin/capsule" server --port "$PORT" --data-dir "$state/data" --cache-dir "$CAPSULE_CACHE_DIR" \
    --metrics-interval 1s ${CAPSULE_SERVER_ARGS:-} </dev/null >>"$log" 2>&1 &
  local pid=$!
  disown "$pid" # a crash test's SIGKILL is not this shell's news
  echo "$pid" >"$state/pid"
  start_time "$pid" >"$state/start" || true
  local deadline=$((SECONDS + HEALTH_WAIT))
  while :; do
    code="$(health_code)"
    case "$code" in 2??) break ;; esac
    if ! kill -0 "$pid" 2>/dev/null; then
      say "the server exited before answering /health; last lines of $log:"; tail -n 40 "$log" >&2 || true
      return 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      say "no 2xx from /health within ${HEALTH_WAIT}s (last: $code); last lines of $log:"; tail -n 40 "$log" >&2 || true
      return 1
    fi
    sleep 0.2
  done
  say "server is up: pid $pid, http://localhost:$PORT"
}

# Stops the server recorded in $1 by pid (SIGTERM, then SIGKILL after 60 s; $2 = KILL sends SIGKILL at once, as a
# crash). Sandboxes keep running.
stop_server() {
  local state="$1" signal="${2:-TERM}" pid
  pid="$(cat "$state/pid" 2>/dev/null || true)"
  [ -n "$pid" ] || return 0
  if ! kill -0 "$pid" 2>/dev/null; then rm -f "$state/pid"; return 0; fi
  if [ "$(start_time "$pid")" != "$(cat "$state/start" 2>/dev/null)" ]; then
    say "pid $pid is no longer the server this script started; not signalling it"; rm -f "$state/pid"; return 0
  fi
  kill "-$signal" "$pid" 2>/dev/null || true
  for _ in $(seq 1 600); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    say "server (pid $pid) ignored SIGTERM for 60s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
  rm -f "$state/pid"
}

# What a host reboot does to the sandboxes of the (stopped) server in $1: their processes, runc containers, mounts
# and network namespaces go; their directories under <data>/sandboxes stay. Touches only this server's sandboxes.
simulate_reboot() {
  local data="$1/data" dir id
  for dir in "$data"/sandboxes/*/; do
    [ -d "$dir" ] || continue
    id="$(basename "$dir")"
    runc --root "$RUNC_ROOT" delete -f "$id" >/dev/null 2>&1 || true
    ip netns delete "capsule-$id" 2>/dev/null || true
  done
  findmnt -rn -o TARGET | grep -F "$data/" | sort -r | while read -r m; do
    umount "$m" 2>/dev/null || umount -l "$m" || say "could not unmount $m"
  done
}

# Kills every sandbox the server knows, through its API (pages of 100, all states).
kill_all_sandboxes() {
  local state="$1"
  [ -f "$state/data/api-key" ] || return 0
  E2B_API_URL="http://127.0.0.1:$PORT" E2B_API_KEY="$(cat "$state/data/api-key")" node --input-type=module -e '
    const api = process.env.E2B_API_URL, headers = { "X-API-Key": process.env.E2B_API_KEY }
    const ids = []
    for (let token = ""; ;) {
      const r = await fetch(`${api}/v2/sandboxes?limit=100&state=running,paused${token && "&nextToken=" + encodeURIComponent(token)}`, { headers })
      if (!r.ok) throw new Error(`listing sandboxes: ${r.status} ${await r.text()}`)
      ids.push(...(await r.json()).map((s) => s.sandboxID))
      token = r.headers.get("x-next-token") || ""
      if (!token) break
    }
    for (const id of ids) {
      const r = await fetch(`${api}/sandboxes/${id}`, { method: "DELETE", headers })
      if (r.status !== 204 && r.status !== 404) console.error(`killing ${id}: ${r.status} ${await r.text()}`)
    }
    if (ids.length) console.error(`server-for-tests: killed ${ids.length} sandbox(es) left by the tests: ${ids.join(" ")}`)
  ' || say "could not kill the sandboxes through the API (see above)"
}

# Lists what this server left on the host; prints nothing when clean.
leaks() {
  local state="$1" data="$1/data"
  runc --root "$RUNC_ROOT" list -q 2>/dev/null | while read -r c; do
    [ -n "$c" ] || continue
    if runc --root "$RUNC_ROOT" state "$c" 2>/dev/null | grep -q "\"bundle\": \"$data/"; then echo "runc container $c"; fi
  done
  comm -13 "$state/netns-before" <(capsule_namespaces) | sed 's/^/network namespace /'
  findmnt -rn -o TARGET | grep -F "$data/" | sed 's/^/mount /' || true
  pgrep -f -- "$data/microvm/" | sed 's/^/QEMU process (microvm driver) /' || true
  if [ -z "$(runc --root "$RUNC_ROOT" list -q 2>/dev/null)" ] && nft list tables 2>/dev/null | grep -qx 'table inet capsule'; then
    echo "nftables table inet capsule (no capsule container runs)"
  fi
}

start() {
  [ "$(id -u)" = 0 ] || die "must run as root (runc, network namespaces, nftables)"
  [ -x "$REPO/bin/capsule" ] && [ -f "$REPO/cli/target/capsule.jar" ] || die "build first: scripts/setup.sh"
  [ -n "$PORT" ] || PORT="$(free_port)"
  STATE="$(state_dir)"
  [ ! -e "$STATE" ] || die "$STATE exists: a server started by this script may still run on port $PORT; run '$0 stop --port $PORT'"
  mkdir -p "$STATE/data"; chmod 0700 "$STATE"
  capsule_namespaces >"$STATE/netns-before"
  launch "$STATE" || { stop_state; exit 1; }
}

# Everything `stop` does; returns 1 when something leaked. Safe to call twice.
stop_state() {
  [ -d "$STATE" ] || return 0
  if [ -f "$STATE/pid" ] && kill -0 "$(cat "$STATE/pid")" 2>/dev/null; then kill_all_sandboxes "$STATE"; fi
  stop_server "$STATE"
  local left; left="$(leaks "$STATE")"
  if [ -n "$left" ]; then
    say "left behind after the server stopped:"; echo "$left" | sed 's/^/  /' >&2
    say "keeping $STATE for inspection; remove the leftovers, then rm -rf $STATE"
    return 1
  fi
  rm -rf "$STATE"
}

print_env() {
  echo "export E2B_API_URL=http://localhost:$PORT E2B_SANDBOX_URL=http://localhost:$PORT"
  echo "export E2B_API_KEY=$(cat "$STATE/data/api-key")"
  echo "export CAPSULE_SERVER_PORT=$PORT CAPSULE_SERVER_PID=$(cat "$STATE/pid") CAPSULE_SERVER_DATA_DIR=$STATE/data"
}

case "$MODE" in
  start)
    [ ${#CMD[@]} -eq 0 ] || die "start takes no command; use 'run -- CMD'"
    start
    print_env
    ;;
  restart)
    [ -n "$PORT" ] || die "restart needs --port"
    STATE="$(state_dir)"; [ -d "$STATE" ] || die "no server started by this script on port $PORT"
    stop_server "$STATE"
    launch "$STATE"
    cat "$STATE/pid"
    ;;
  crash|reboot)
    [ -n "$PORT" ] || die "$MODE needs --port"
    STATE="$(state_dir)"; [ -d "$STATE" ] || die "no server started by this script on port $PORT"
    if [ "$MODE" = crash ]; then
      stop_server "$STATE" KILL
    else
      stop_server "$STATE"
      simulate_reboot "$STATE"
    fi
    launch "$STATE"
    cat "$STATE/pid"
    ;;
  stop)
    [ -n "$PORT" ] || die "stop needs --port"
    STATE="$(state_dir)"
    [ -d "$STATE" ] || { say "nothing to stop on port $PORT"; exit 0; }
    stop_state || exit 1
    say "stopped the server on port $PORT; nothing left behind"
    ;;
  run)
    [ ${#CMD[@]} -gt 0 ] || die "run needs a command after --"
    start
    rc=0
    trap 'rc=130; exit 130' INT
    trap 'rc=143; exit 143' TERM
    trap 'stop_state || rc=1; exit $rc' EXIT
    set +e
    E2B_API_URL="http://localhost:$PORT" E2B_SANDBOX_URL="http://localhost:$PORT" E2B_API_KEY="$(cat "$STATE/data/api-key")" \
      CAPSULE_SERVER_PORT="$PORT" CAPSULE_SERVER_PID="$(cat "$STATE/pid")" CAPSULE_SERVER_DATA_DIR="$STATE/data" \
      CAPSULE_SERVER_SCRIPT="$SELF" "${CMD[@]}"
    rc=$?
    set -e
    ;;
  *) usage ;;
esac
