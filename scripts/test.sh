#!/usr/bin/env bash
# Runs the whole test suite: every JUnit test (./mvnw -B verify), then the end-to-end suites with the official e2b
# SDK: e2e/tests against a freshly started envd in a private mount namespace (scripts/envd-sandboxed.sh), and
# e2e/control-plane against a real `bin/capsule server` with a fresh data directory (scripts/server-for-tests.sh),
# and a subset of it against the server with the microvm driver.
# Every part runs even if an earlier one fails. Ends with one line `summary: N passed, N failed, N skipped` and exits non-zero on any failure,
# on a run that ran no test, or (in CI, or with CAPSULE_STRICT_MOUNTS=1) when the host's mounts changed.
# Run scripts/setup.sh once first.
#
# Environment: CAPSULE_PORT (envd port for the envd e2e suite, default 49983), CAPSULE_SKIP_JUNIT=1 /
# CAPSULE_SKIP_E2E=1 / CAPSULE_SKIP_SERVER_E2E=1 (skip a part; the run then fails, so use it while developing only),
# CAPSULE_E2E_ARGS (extra args for `node --test`, e.g. --test-name-pattern=pty).
set -uo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO"

JAVA25="$(find_java25)"
if [ -z "$JAVA25" ]; then
  echo "test: no Java 25 JDK found; run scripts/setup.sh first (or set JAVA_HOME to a JDK 25)" >&2
  exit 1
fi
export JAVA_HOME="$JAVA25"
mkdir -p target
mounts_before="$(findmnt -rn -o TARGET,SOURCE,FSTYPE | sort)"

passed=0 failed=0 skipped=0 problems=()

# --- 1. JUnit -----------------------------------------------------------------------------------------------------
junit_tests=0 junit_failed=0 junit_skipped=0
if [ "${CAPSULE_SKIP_JUNIT:-0}" = 1 ]; then
  problems+=("JUnit skipped (CAPSULE_SKIP_JUNIT=1)")
else
  # Reports of an earlier run must not be counted again.
  find . -path ./e2e/node_modules -prune -o -type d \( -name surefire-reports -o -name failsafe-reports \) \
    -path '*/target/*' -print0 | xargs -0 -r rm -rf
  log "JUnit: ./mvnw -B verify"
  # Test failures do not stop the build, so the e2e suite still runs; they are counted from the reports below.
  timeout --kill-after=30 2700 ./mvnw -B -ntp verify -Dmaven.test.failure.ignore=true
  mvn_rc=$?
  [ "$mvn_rc" = 0 ] || problems+=("./mvnw verify exited $mvn_rc (build error or timeout; see above)")
  # The counts are attributes of each report's <testsuite ...> tag, which surefire writes on one line.
  attr() { echo "$2" | grep -o " $1=\"[0-9]*\"" | grep -o '[0-9]\+' || echo 0; }
  while IFS= read -r -d '' report; do
    head="$(grep -m1 -o '<testsuite [^>]*' "$report")"
    junit_tests=$((junit_tests + $(attr tests "$head")))
    junit_failed=$((junit_failed + $(attr failures "$head") + $(attr errors "$head")))
    junit_skipped=$((junit_skipped + $(attr skipped "$head")))
  done < <(find . -path ./e2e/node_modules -prune -o -type f -name 'TEST-*.xml' \
             \( -path '*/target/surefire-reports/*' -o -path '*/target/failsafe-reports/*' \) -print0)
  echo "JUnit: tests=$junit_tests failed=$junit_failed skipped=$junit_skipped"
  [ "$junit_tests" -gt 0 ] || problems+=("JUnit ran no test")
  [ "$junit_failed" = 0 ] || problems+=("$junit_failed JUnit test(s) failed (reports: */target/surefire-reports)")
fi
passed=$((passed + junit_tests - junit_failed - junit_skipped))
failed=$((failed + junit_failed))
skipped=$((skipped + junit_skipped))

# --- 2 and 3. End-to-end suites with the official e2b SDK -------------------------------------------------------------
# Runs one suite under a harness: e2e_suite NAME TAP LIMIT HARNESS... -- TESTS...; adds its counts to the totals.
e2e_suite() {
  local name="$1" tap="$2" limit="$3"; shift 3
  local harness=() pass=0 fail=0 skip=0 rc
  while [ "$1" != -- ]; do harness+=("$1"); shift; done
  shift
  rm -f "$tap"
  # shellcheck disable=SC2086
  (cd e2e && timeout --kill-after=60 "$limit" "${harness[@]}" -- \
     node --test --test-concurrency=1 --test-timeout=300000 \
       --test-reporter=spec --test-reporter-destination=stdout \
       --test-reporter=tap --test-reporter-destination="$tap" \
       ${CAPSULE_E2E_ARGS:-} "$@")
  rc=$?
  if [ -s "$tap" ]; then
    tapcount() { grep -E "^# $1 [0-9]+$" "$tap" | tail -n1 | grep -o '[0-9]\+' || echo 0; }
    pass=$(tapcount pass)
    fail=$(($(tapcount fail) + $(tapcount cancelled)))
    skip=$(($(tapcount skipped) + $(tapcount todo)))
  fi
  echo "$name: pass=$pass failed=$fail skipped=$skip (exit $rc)"
  if [ "$rc" != 0 ] && [ "$fail" = 0 ]; then
    # The harness did not start, left something behind, the run timed out, or the runner crashed: one failure.
    fail=1
    problems+=("$name exited $rc without a failing test: the harness failed, found leftovers or the run was cut off (see above)")
  fi
  [ $((pass + fail)) -gt 0 ] || problems+=("$name ran no test")
  [ "$fail" = 0 ] || problems+=("$fail $name test(s) failed")
  passed=$((passed + pass))
  failed=$((failed + fail))
  skipped=$((skipped + skip))
}

if [ ! -d e2e/node_modules/e2b ]; then
  problems+=("e2e not run: e2e/node_modules is missing; run scripts/setup.sh")
else
  if [ "${CAPSULE_SKIP_E2E:-0}" = 1 ]; then
    problems+=("envd e2e skipped (CAPSULE_SKIP_E2E=1)")
  else
    log "envd e2e: official e2b SDK in debug mode against a sandboxed envd (log: target/envd-sandboxed-${CAPSULE_PORT:-49983}.log)"
    e2e_suite "envd e2e" "$REPO/target/e2e-results.tap" 1800 "$REPO/scripts/envd-sandboxed.sh" run -- "$REPO"/e2e/tests/*.test.mjs
  fi
  if [ "${CAPSULE_SKIP_SERVER_E2E:-0}" = 1 ]; then
    problems+=("server e2e skipped (CAPSULE_SKIP_SERVER_E2E=1)")
  else
    log "server e2e: official e2b SDK against bin/capsule server (log: target/server-for-tests-<port>.log)"
    e2e_suite "server e2e" "$REPO/target/e2e-server-results.tap" 1800 "$REPO/scripts/server-for-tests.sh" run -- \
      "$REPO"/e2e/control-plane/*.test.mjs
    # The microvm driver under the same SDK: a subset that fits CI's time under TCG (create, commands, files, a
    # user port through the gateway, pause, a server restart with running and paused sandboxes, resume), on a
    # server that runs the oci driver beside it, with a container and a VM at once.
    log "server e2e (microvm driver): official e2b SDK against bin/capsule server --runtime microvm --runtimes oci"
    e2e_suite "server e2e (microvm)" "$REPO/target/e2e-server-microvm-results.tap" 900 \
      env CAPSULE_SERVER_ARGS="--runtime microvm --runtimes oci --warm-pool-size 0 ${CAPSULE_SERVER_ARGS:-}" \
      "$REPO/scripts/server-for-tests.sh" run -- "$REPO"/e2e/control-plane/zz-restart.test.mjs \
      "$REPO"/e2e/control-plane/drivers/two-drivers.test.mjs
  fi
fi

# --- 4. Leak check: the host's mount table is as it was ------------------------------------------------------------
mounts_after="$(findmnt -rn -o TARGET,SOURCE,FSTYPE | sort)"
if [ "$mounts_before" != "$mounts_after" ]; then
  echo "test: the host's mounts changed during the run:" >&2
  diff <(echo "$mounts_before") <(echo "$mounts_after") >&2
  # On a developer's machine other work may mount things meanwhile; in CI nothing else runs, so it is a leak.
  if [ "${CI:-}" = true ] || [ "${CAPSULE_STRICT_MOUNTS:-}" = 1 ]; then
    problems+=("host mounts changed during the run (leaked mounts?)")
  else
    echo "test: (not counted as a failure outside CI; CAPSULE_STRICT_MOUNTS=1 makes it one)" >&2
  fi
fi

echo
if [ ${#problems[@]} -gt 0 ]; then
  for p in "${problems[@]}"; do echo "test: $p"; done
fi
echo "summary: $passed passed, $failed failed, $skipped skipped"
[ ${#problems[@]} -eq 0 ] && [ "$failed" = 0 ]
