#!/usr/bin/env bash
# Records the Java AOT cache that bin/capsule starts envd with (cli/target/capsule.aot, next to the jar): envd then
# starts about twice as fast. Runs envd once through bin/capsule with CAPSULE_AOT_TRAIN=1 on a free loopback port,
# exercises what a sandbox's first minute does (/health, /envs, /metrics, /files up and down, plain and gzip, the
# process and filesystem RPCs), then stops it by its pid with SIGTERM; the JVM writes the cache as it exits.
#
# Idempotent: does nothing while the cache is newer than the jar and bin/capsule (whose JVM flags it must match);
# --force records it anyway. scripts/setup.sh runs it after the build. A stale or foreign cache never breaks start-up:
# bin/capsule only uses a cache newer than the jar, and the JVM ignores one recorded for another jar or JDK.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO"

JAR="${CAPSULE_JAR:-$REPO/cli/target/capsule.jar}"
AOT="${JAR%.jar}.aot"
[ -f "$JAR" ] || { echo "aot-train: $JAR is missing; build first: ./mvnw -B -DskipTests package" >&2; exit 1; }
if [ "${1:-}" != "--force" ] && [ -f "$AOT" ] && [ "$AOT" -nt "$JAR" ] && [ "$AOT" -nt "$REPO/bin/capsule" ]; then
  log "AOT cache is up to date: $AOT"
  exit 0
fi
command -v curl >/dev/null || { echo "aot-train: curl is needed; install it (scripts/setup.sh does)" >&2; exit 1; }
if [ -z "${JAVA_HOME:-}" ]; then
  JAVA_HOME="$(find_java25)"
  export JAVA_HOME
fi

WORK="$(mktemp -d /tmp/capsule-aot-train-XXXXXX)"
PID=
cleanup() {
  if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
    kill -TERM "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

rm -f "$AOT"
log "recording the AOT cache: $AOT"
# Port 0: envd picks a free port and prints it. bin/capsule execs the JVM, so $! is envd's pid.
CAPSULE_JAR="$JAR" CAPSULE_AOT_TRAIN=1 "$REPO/bin/capsule" envd --host 127.0.0.1 --port 0 --default-user root \
  </dev/null >"$WORK/envd.log" 2>&1 &
PID=$!
PORT=
for _ in $(seq 1 600); do
  PORT="$(sed -n 's/^envd listening on .*:\([0-9][0-9]*\)$/\1/p' "$WORK/envd.log" | head -n 1)"
  [ -n "$PORT" ] && break
  kill -0 "$PID" 2>/dev/null || { echo "aot-train: envd exited early:" >&2; cat "$WORK/envd.log" >&2; exit 1; }
  sleep 0.1
done
[ -n "$PORT" ] || { echo "aot-train: envd did not start within 60 s:" >&2; cat "$WORK/envd.log" >&2; exit 1; }
URL="http://127.0.0.1:$PORT"

# A Connect call: unary JSON, or a server stream (one enveloped JSON message: flags 0, 4-byte length, payload).
unary() { curl -sS -o /dev/null -X POST -H 'Content-Type: application/json' --data-binary "$2" "$URL/$1"; }
stream() {
  local n=${#2}
  printf "\\x00\\x$(printf %02x $((n >> 24 & 255)))\\x$(printf %02x $((n >> 16 & 255)))\\x$(printf %02x $((n >> 8 & 255)))\\x$(printf %02x $((n & 255)))%s" "$2" \
    | curl -sS -o /dev/null -X POST -H 'Content-Type: application/connect+json' --data-binary @- "$URL/$1"
}

head -c 262144 /dev/urandom >"$WORK/upload"
for round in $(seq 1 20); do
  curl -sS -o /dev/null "$URL/health"
  curl -sS -o /dev/null "$URL/envs"
  curl -sS -o /dev/null "$URL/metrics"
  curl -sS -o /dev/null -F "file=@$WORK/upload" "$URL/files?path=$WORK/files/up-$round"
  curl -sS -o /dev/null -H 'Content-Type: application/octet-stream' --data-binary "@$WORK/upload" \
    "$URL/files?path=$WORK/files/raw-$round"
  curl -sS -o /dev/null "$URL/files?path=$WORK/files/up-$round"
  curl -sS -o /dev/null -H 'Accept-Encoding: gzip' "$URL/files?path=$WORK/files/raw-$round"
  curl -sS -o /dev/null "$URL/files?path=$WORK/files/missing"
  stream process.Process/Start '{"process":{"cmd":"/bin/bash","args":["-l","-c","echo hi; echo err >&2"]}}'
  stream process.Process/Start "{\"process\":{\"cmd\":\"/bin/sh\",\"args\":[\"-c\",\"exit 3\"],\"cwd\":\"$WORK\"},\"stdin\":false}"
  unary process.Process/List '{}'
  unary filesystem.Filesystem/MakeDir "{\"path\":\"$WORK/dir-$round/a\"}"
  unary filesystem.Filesystem/Stat "{\"path\":\"$WORK/files/up-$round\"}"
  unary filesystem.Filesystem/ListDir "{\"path\":\"$WORK\",\"depth\":2}"
  unary filesystem.Filesystem/Move "{\"source\":\"$WORK/dir-$round\",\"destination\":\"$WORK/moved-$round\"}"
  unary filesystem.Filesystem/Remove "{\"path\":\"$WORK/moved-$round\"}"
  unary filesystem.Filesystem/Stat "{\"path\":\"$WORK/missing\"}"
done

# Stop envd by its pid and wait: the JVM writes the cache on its way out.
kill -TERM "$PID"
wait "$PID" 2>/dev/null || true
PID=
if [ ! -s "$AOT" ]; then
  echo "aot-train: the JVM wrote no AOT cache; its output:" >&2
  cat "$WORK/envd.log" >&2
  exit 1
fi
log "AOT cache recorded: $AOT ($(du -h "$AOT" | cut -f1))"
