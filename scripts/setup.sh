#!/usr/bin/env bash
# Installs what Capsule needs to build, run and test, then builds it. Safe to rerun: installs only what is
# missing (apt-get update at most once), `npm ci` the e2e suite, `./mvnw -B -DskipTests package`, then records
# envd's AOT cache (scripts/aot-train.sh, skipped while it is newer than the jar).
# For a fresh Debian 12 or 13 machine, as root (or with sudo). Non-interactive.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO"
export DEBIAN_FRONTEND=noninteractive

SUDO=()
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null; then SUDO=(sudo -n); else SUDO=(false); fi
fi

APT_UPDATED=0
apt_install() {
  [ $# -gt 0 ] || return 0
  if [ "${SUDO[*]}" = false ]; then
    echo "setup: need to install $* but this is not root and sudo is missing; rerun as root" >&2
    exit 1
  fi
  if [ "$APT_UPDATED" = 0 ]; then
    log "apt-get update"
    "${SUDO[@]}" apt-get update -q
    APT_UPDATED=1
  fi
  log "apt-get install $*"
  "${SUDO[@]}" apt-get install -y -q --no-install-recommends "$@"
}

# Debian packages, by the command or file that shows each is there.
#   gcc, libc6-dev: the build compiles a small static C helper.  util-linux: unshare, setsid, findmnt (test harness).
#   iproute2: ss/ip.  curl: health checks.  attr: setfattr/getfattr (file metadata tests).  procps: ps, pgrep.
#   ca-certificates: HTTPS to Maven Central and npm.  bash-completion is not needed; xz/gzip come with Debian.
#   runc: the oci driver's container runtime.  mmdebstrap: builds the base template from Debian.  tini: its static
#   build is PID 1 in every sandbox.  nftables: per-sandbox NAT and egress rules.  e2fsprogs (mkfs.ext4), mount
#   (losetup): each sandbox's disk is an ext4 image on a loop device.
#   xz-utils, python3: used by tests (embedded PostgreSQL archive; small HTTP servers in network tests).
#   qemu-system-x86, qemu-utils: the microvm driver's VMs and their qcow2 disks.  busybox-static: the guest's
#   init (static, so it runs on any template).  lz4: unpacks the guest kernel's vmlinux from its bzImage.
missing=()
need() { command -v "$1" >/dev/null 2>&1 || missing+=("$2"); }
need gcc gcc
[ -e /usr/include/stdio.h ] && [ -e /usr/lib/x86_64-linux-gnu/libc.a -o -e /usr/lib/aarch64-linux-gnu/libc.a ] \
  || missing+=(libc6-dev)
need unshare util-linux
need setsid util-linux
need findmnt util-linux
need ip iproute2
need curl curl
need setfattr attr
need pgrep procps
need tput ncurses-bin
need stty coreutils
need git git
need runc runc
need mmdebstrap mmdebstrap
[ -x /usr/bin/tini-static ] || missing+=(tini)
need nft nftables
need mkfs.ext4 e2fsprogs
need losetup mount
need xz xz-utils          # unpacks the embedded PostgreSQL the store tests run
need python3 python3      # small test servers in the network and runtime tests
need openssl openssl      # the egress tests' stand-in TLS servers make a throwaway certificate
need setpriv util-linux   # the PostgreSQL fixture runs initdb as nobody
[ -e /etc/ssl/certs/ca-certificates.crt ] || missing+=(ca-certificates)
need qemu-system-x86_64 qemu-system-x86
need qemu-img qemu-utils
dpkg -s busybox-static >/dev/null 2>&1 || missing+=(busybox-static)
need lz4 lz4
if [ ${#missing[@]} -gt 0 ]; then
  # shellcheck disable=SC2207
  missing=($(printf '%s\n' "${missing[@]}" | sort -u))
  apt_install "${missing[@]}"
fi

# The microvm driver's guest kernel: Debian's cloud kernel package, downloaded and extracted (dpkg-deb -x, not
# installed: the host keeps its own kernel) into the template cache, where the driver builds its vmlinux and
# initramfs from it. The newest one there is used; old ones may be deleted.
guest_kernel() {
  [ "$(dpkg --print-architecture)" = amd64 ] || { log "no guest kernel for the microvm driver: only amd64 hosts"; return 0; }
  local cache="${CAPSULE_CACHE_DIR:-/var/cache/capsule}/kernels" pkg
  pkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
  if [ -z "$pkg" ] && [ "$APT_UPDATED" = 0 ]; then
    "${SUDO[@]}" apt-get update -q
    APT_UPDATED=1
    pkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
  fi
  [ -n "$pkg" ] || { echo "setup: apt knows no linux-image-cloud-amd64 (the microvm driver's guest kernel)" >&2; exit 1; }
  [ -d "$cache/$pkg/boot" ] && return 0
  log "guest kernel for the microvm driver: $pkg into $cache"
  local tmp
  tmp=$(mktemp -d)
  chown _apt "$tmp" 2>/dev/null || true   # apt-get download drops privileges to _apt where it can
  (cd "$tmp" && "${SUDO[@]}" apt-get download -q "$pkg")
  "${SUDO[@]}" mkdir -p "$cache"
  "${SUDO[@]}" rm -rf "$cache/.$pkg.tmp"
  "${SUDO[@]}" dpkg-deb -x "$tmp"/"$pkg"_*.deb "$cache/.$pkg.tmp"
  "${SUDO[@]}" mv "$cache/.$pkg.tmp" "$cache/$pkg"
  rm -rf "$tmp"
}
guest_kernel

# Java 25: Temurin if the machine has it, else Debian 13's OpenJDK 25.
JAVA25="$(find_java25)"
if [ -z "$JAVA25" ]; then
  if ! apt_install openjdk-25-jdk-headless; then
    . /etc/os-release
    echo "setup: no Java 25 JDK found and openjdk-25-jdk-headless could not be installed on ${PRETTY_NAME:-this system}." >&2
    echo "setup: install a JDK 25 (Debian 13 ships openjdk-25-jdk-headless; elsewhere use Temurin 25) and set JAVA_HOME." >&2
    exit 1
  fi
  JAVA25="$(find_java25)"
  [ -n "$JAVA25" ] || { echo "setup: openjdk-25-jdk-headless is installed but no JDK 25 was found under /usr/lib/jvm" >&2; exit 1; }
fi
export JAVA_HOME="$JAVA25"
log "Java 25: $JAVA_HOME"

# Node.js >= 20.18.1 and npm for the e2e suite (the e2b SDK's engines). Debian 13 ships Node 20; Debian 12 ships 18.
node_ok() {
  command -v node >/dev/null && command -v npm >/dev/null \
    && node -e 'const [a,b,c]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&(b>18||(b===18&&c>=1)))?0:1)'
}
if ! node_ok; then
  apt_install nodejs npm
  node_ok || { echo "setup: Node.js >= 20.18.1 with npm is needed for the e2e suite; found $(node --version 2>/dev/null || echo none)" >&2; exit 1; }
fi
log "Node $(node --version), npm $(npm --version)"

log "npm ci (e2e)"
(cd e2e && npm ci --no-audit --no-fund --loglevel=error)

log "./mvnw -B -DskipTests package"
./mvnw -B -ntp -DskipTests package

# envd's Java AOT cache (cli/target/capsule.aot): a short representative run of envd; skipped while up to date.
"$REPO/scripts/aot-train.sh"

log "setup done"
