#!/usr/bin/env bash
# The microvm driver's benchmark at the driver seam, with the oci driver as the peer: create from the template
# snapshot to envd's first answer, pause with memory, resume, host memory of an idle and a paused sandbox, and
# snapshot sizes, for 256 and 512 MiB guests (bench/microvm/MicroVmBench.java). As root, after scripts/setup.sh.
#   bench/microvm/run.sh [ROUNDS [SIZE_MIB...]]     default: 10 rounds, 256 and 512
# It uses its own data directories, runc root and networks (capsulebench*, 10.217.0.0/24 and 10.218.0.0/24) and
# removes them; the template snapshots it builds stay in the template cache ($CAPSULE_CACHE_DIR).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# shellcheck source=scripts/lib.sh
. "$repo/scripts/lib.sh"
jar="$repo/cli/target/capsule.jar"
[ -f "$jar" ] || { echo "build first: ./mvnw -B -DskipTests package" >&2; exit 2; }
java="$(find_java25)/bin/java"
export CAPSULE_HOME="$repo"   # where the driver finds envd's build for the runtime bundle
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg); $(date -u +%Y-%m-%dT%H:%MZ); $(nproc) cores"
"$java" -cp "$jar" "$repo/bench/microvm/MicroVmBench.java" "${@:-10}"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
