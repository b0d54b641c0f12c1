# Shared by scripts/setup.sh and scripts/test.sh (sourced, not run): where the repo is and which JDK builds it.

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# Prints the home of a Java 25 JDK, or nothing: JAVA_HOME if it is one, then Temurin 25, then any JDK 25 under
# /usr/lib/jvm (Debian 13's openjdk-25-jdk-headless installs /usr/lib/jvm/java-25-openjdk-amd64).
find_java25() {
  local candidate
  for candidate in "${JAVA_HOME:-}" /usr/lib/jvm/temurin-25-jdk-amd64 /usr/lib/jvm/java-25-openjdk-* /usr/lib/jvm/*25*; do
    [ -n "$candidate" ] && [ -x "$candidate/bin/javac" ] || continue
    if "$candidate/bin/java" -version 2>&1 | head -n 1 | grep -Eq '"25([."]|$)'; then
      echo "$candidate"
      return 0
    fi
  done
  return 0
}

log() { echo "==> $*"; }
