#!/usr/bin/env bash
# Runs Capsule's envd standalone for tests without changing the host.
#
# envd serves E2B's default user `user` (uid 1000, home /home/user), which this machine does not have. So envd
# runs in a private mount namespace where a fixture /etc/passwd and /etc/group (the host's, plus `user`) are
# bind-mounted over the real ones, /home is a fresh tmpfs holding only /home/user, and /root and /tmp are empty
# tmpfs.
# Mounts made in a private namespace never reach the host and vanish with its last process; `stop` ends every
# process of that namespace by pid and removes the state directory, so nothing is left behind.
#
# Usage:
#   scripts/envd-sandboxed.sh run [--port P] -- CMD [ARG...]   start envd, run CMD, stop envd; exit with CMD's code
#   scripts/envd-sandboxed.sh start [--port P]                 start envd in the background, print its pid
#   scripts/envd-sandboxed.sh stop [--port P]                  stop the envd that `start` started on that port
#
# CMD sees E2B_DEBUG=true (the e2b SDK then talks to http://localhost:49983 without the API) and
# CAPSULE_ENVD_URL, CAPSULE_ENVD_PORT, CAPSULE_ENVD_PID.
#
# Environment:
#   CAPSULE_PORT          port envd listens on (default 49983; --port wins)
#   CAPSULE_ENVD_CMD      the command that starts envd, given `--port P` (default: <repo>/bin/capsule envd)
#   CAPSULE_ENVD_LOG      where envd's output goes (default: <repo>/target/envd-sandboxed-<port>.log)
#   CAPSULE_HEALTH_WAIT   seconds to wait for GET /health (default 90)
#   CAPSULE_STATE_ROOT    where the per-port state directory lives (default: /tmp)
#   CAPSULE_SANDBOX_KEEP  colon-separated paths under /home, /root or /tmp that envd needs (the repo, JAVA_HOME
#                         and the envd command's folder are kept visible anyway)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

die() { echo "envd-sandboxed: $*" >&2; exit 2; }
say() { echo "envd-sandboxed: $*" >&2; }

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | grep '^#' | sed 's/^# \{0,1\}//' >&2; exit 2; }

[ $# -ge 1 ] || usage
MODE="$1"; shift
PORT="${CAPSULE_PORT:-49983}"
CMD=()
while [ $# -gt 0 ]; do
  case "$1" in
    --port) [ $# -ge 2 ] || die "--port needs a value"; PORT="$2"; shift 2 ;;
    --port=*) PORT="${1#--port=}"; shift ;;
    --) shift; CMD=("$@"); break ;;
    -h|--help) usage ;;
    *) die "unknown argument '$1'; see --help" ;;
  esac
done
[[ "$PORT" =~ ^[0-9]+$ ]] && [ "$PORT" -ge 1 ] && [ "$PORT" -le 65535 ] || die "port '$PORT' is not a number in 1..65535"

STATE="${CAPSULE_STATE_ROOT:-/tmp}/capsule-envd-sandbox-$PORT"
LOG="${CAPSULE_ENVD_LOG:-$REPO/target/envd-sandboxed-$PORT.log}"
HEALTH_WAIT="${CAPSULE_HEALTH_WAIT:-90}"
HEALTH_URL="http://127.0.0.1:$PORT/health"

# The envd command line as an array: CAPSULE_ENVD_CMD is split on spaces (paths with spaces are not supported).
if [ -n "${CAPSULE_ENVD_CMD:-}" ]; then
  read -r -a ENVD_CMD <<<"$CAPSULE_ENVD_CMD"
else
  ENVD_CMD=("$REPO/bin/capsule" envd)
fi

health_code() { curl -s -o /dev/null -m 2 -w '%{http_code}' "$HEALTH_URL" 2>/dev/null || true; }

# Start time of a process (clock ticks since boot, field 22 of /proc/PID/stat), or nothing if it is gone.
start_time() { sed -E 's/^.*\) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f20; }

# Pids of every process in envd's namespace: same mount namespace ($1, like mnt:[4026532]) and, since namespace
# numbers are reused once a namespace dies, the marker file $2 that only our namespace's /home has.
pids_in_namespace() {
  local ns="$1" marker="$2" p
  for p in /proc/[0-9]*; do
    [ "$(readlink "$p/ns/mnt" 2>/dev/null)" = "$ns" ] && [ -e "$p/root/home/$marker" ] && echo "${p#/proc/}"
  done
  return 0
}

start() {
  [ "$(id -u)" = 0 ] || die "must run as root: it needs a private mount namespace (unshare --mount)"
  command -v unshare >/dev/null || die "unshare not found; install util-linux"
  command -v curl >/dev/null || die "curl not found; install curl"
  [ -x "${ENVD_CMD[0]}" ] || command -v "${ENVD_CMD[0]}" >/dev/null \
    || die "'${ENVD_CMD[0]}' does not exist or is not executable; build first (scripts/setup.sh) or set CAPSULE_ENVD_CMD"
  if [ -e "$STATE" ]; then
    die "$STATE exists: an envd started by this script may still run on port $PORT; run '$0 stop --port $PORT'"
  fi
  local code; code="$(health_code)"
  if [ "$code" != "000" ]; then
    die "port $PORT already answers HTTP ($code on /health); stop whatever listens there (ss -ltnp 'sport = :$PORT')"
  fi

  mkdir -p "$STATE" "$(dirname "$LOG")"
  chmod 0700 "$STATE"
  # Fixture users: the host's, minus any `user` or uid/gid 1000 that would shadow E2B's user, plus `user`.
  awk -F: '$1 != "user" && $3 != 1000' /etc/passwd >"$STATE/passwd"
  echo 'user:x:1000:1000:E2B default user:/home/user:/bin/bash' >>"$STATE/passwd"
  awk -F: '$1 != "user" && $3 != 1000' /etc/group >"$STATE/group"
  echo 'user:x:1000:' >>"$STATE/group"
  chmod 0644 "$STATE/passwd" "$STATE/group"
  mkdir "$STATE/stash"
  local marker; marker=".capsule-sandbox-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
  echo "$marker" >"$STATE/marker"

  # Paths under /home, /root or /tmp that must stay visible to envd once those are replaced by private tmpfs: the
  # repo, the JDK and the envd command's folder wherever they are, plus CAPSULE_SANDBOX_KEEP (colon-separated).
  local keep=() p real
  local IFS_SAVE="$IFS"; IFS=':'; local extra=(${CAPSULE_SANDBOX_KEEP:-}); IFS="$IFS_SAVE"
  for p in "$REPO" "${JAVA_HOME:-}" "$(dirname "$(readlink -f "${ENVD_CMD[0]}" 2>/dev/null || echo /)")" "${extra[@]}"; do
    [ -n "$p" ] && [ -e "$p" ] || continue
    real="$(readlink -f "$p")"
    case "$real/" in /home/*|/root/*|/tmp/*) keep+=("$real") ;; esac
  done

  # Runs inside the new namespace (as unshare's command): set up mounts, then become envd (exec keeps the pid).
  # /home, /root and /tmp become private tmpfs: whatever the tests, envd or its libraries write there (as `user`
  # or as root) stays off the host. The old trees are first bound into a stash and reached through the working
  # directory, which stays usable after /tmp (where the stash usually lives) is covered.
  # shellcheck disable=SC2016
  local inner='
    set -eu
    state="$1"; shift; marker="$1"; shift; nkeep="$1"; shift
    keep=(); for ((i = 0; i < nkeep; i++)); do keep+=("$1"); shift; done
    mount --bind "$state/passwd" /etc/passwd
    mount --bind "$state/group" /etc/group
    mount -t tmpfs -o mode=0700,size=1m capsule-stash "$state/stash"
    cd "$state/stash"
    mkdir home root tmp
    mount --rbind /home ./home
    mount --rbind /root ./root
    mount --rbind /tmp ./tmp
    mount -t tmpfs -o mode=0755,size=2g capsule-home /home
    mount -t tmpfs -o mode=0700,size=1g capsule-root /root
    mount -t tmpfs -o mode=1777,size=2g capsule-tmp /tmp
    : >"/home/$marker"
    mkdir -m 0755 /home/user
    cp -a /etc/skel/. /home/user/ 2>/dev/null || true
    chown -R 1000:1000 /home/user
    for k in "${keep[@]}"; do
      top="${k#/}"; top="${top%%/*}"
      mkdir -p "$k"; mount --rbind "./$top/${k#/$top/}" "$k"
    done
    # The stash stays mounted but out of reach: its path is under the covered /tmp, and it dies with the namespace.
    cd /
    exec "$@"
  '
  say "starting ${ENVD_CMD[*]} --port $PORT in a private mount namespace (log: $LOG)"
  # setsid: envd leads its own process group, so `stop` can signal it and its direct children at once.
  setsid unshare --mount --propagation private -- bash -c "$inner" envd-sandbox "$STATE" "$marker" "${#keep[@]}" "${keep[@]}" \
    "${ENVD_CMD[@]}" --port "$PORT" </dev/null >"$LOG" 2>&1 &
  local pid=$!
  echo "$pid" >"$STATE/envd.pid"
  # The pid's start time tells a later `stop` whether that pid is still our envd and not a reused number.
  start_time "$pid" >"$STATE/envd.start" || true

  # Wait for health; fail fast if envd died.
  local deadline=$((SECONDS + HEALTH_WAIT))
  while :; do
    code="$(health_code)"
    case "$code" in 2??) break ;; esac
    if ! kill -0 "$pid" 2>/dev/null; then
      say "envd exited before answering /health; last lines of $LOG:"
      tail -n 40 "$LOG" >&2 || true
      stop_state
      exit 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      say "envd did not answer $HEALTH_URL with 2xx within ${HEALTH_WAIT}s (last status: $code); last lines of $LOG:"
      tail -n 40 "$LOG" >&2 || true
      stop_state
      exit 1
    fi
    sleep 0.2
  done
  local ns hostns
  ns="$(readlink "/proc/$pid/ns/mnt")"; hostns="$(readlink /proc/self/ns/mnt)"
  if [ "$ns" = "$hostns" ]; then
    say "envd (pid $pid) runs in the host's mount namespace, refusing to go on"
    stop_state
    exit 1
  fi
  echo "$ns" >"$STATE/mntns"
  say "envd is up: pid $pid, $HEALTH_URL -> $code"
  ENVD_PID="$pid"
}

# Stops what `start` recorded in $STATE, by pid, and removes $STATE. Safe to call twice.
stop_state() {
  [ -d "$STATE" ] || return 0
  local pid ns="" p left marker
  pid="$(cat "$STATE/envd.pid" 2>/dev/null || true)"
  marker="$(cat "$STATE/marker" 2>/dev/null || true)"
  [ -f "$STATE/mntns" ] && ns="$(cat "$STATE/mntns")"
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && [ "$(start_time "$pid")" != "$(cat "$STATE/envd.start" 2>/dev/null)" ]; then
    say "pid $pid is no longer the envd this script started; not signalling it"
    pid=""
  fi
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    [ -z "$ns" ] && ns="$(readlink "/proc/$pid/ns/mnt" 2>/dev/null || true)"
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      say "envd (pid $pid) ignored SIGTERM for 10s; sending SIGKILL"
      kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    fi
    # Reap it when it is our child (run mode), so it does not linger as a zombie.
    wait "$pid" 2>/dev/null || true
  fi
  # Whatever still lives in envd's namespace was started by envd: end it, by pid.
  if [ -n "$ns" ] && [ -n "$marker" ] && [ "$ns" != "$(readlink /proc/self/ns/mnt)" ]; then
    left="$(pids_in_namespace "$ns" "$marker" | tr '\n' ' ')"
    if [ -n "${left// /}" ]; then
      say "processes left in envd's namespace after it stopped, killing them: $left"
      for p in $left; do ps -o pid=,user=,args= -p "$p" >&2 2>/dev/null || true; done
      # shellcheck disable=SC2086
      kill -KILL $left 2>/dev/null || true
      for _ in $(seq 1 50); do [ -z "$(pids_in_namespace "$ns" "$marker")" ] && break; sleep 0.1; done
    fi
  fi
  rm -rf "$STATE"
}

case "$MODE" in
  start)
    [ ${#CMD[@]} -eq 0 ] || die "start takes no command; use 'run -- CMD'"
    start
    echo "$ENVD_PID"
    ;;
  stop)
    [ -d "$STATE" ] || { say "nothing to stop on port $PORT ($STATE does not exist)"; exit 0; }
    stop_state
    say "stopped envd on port $PORT"
    ;;
  run)
    [ ${#CMD[@]} -gt 0 ] || die "run needs a command after --"
    trap 'stop_state' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    start
    set +e
    E2B_DEBUG=true CAPSULE_ENVD_URL="http://localhost:$PORT" CAPSULE_ENVD_PORT="$PORT" CAPSULE_ENVD_PID="$ENVD_PID" \
      "${CMD[@]}"
    rc=$?
    set -e
    exit "$rc"
    ;;
  *) usage ;;
esac
