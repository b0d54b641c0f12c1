#!/usr/bin/env bash
# A stand-in "internet" for the network tests, in a network namespace of its own: the egress tests' servers
# (runtime/src/test/resources/egress/internet.py: HTTP :80, TLS :443 and echo :7 on documentation addresses, a DNS
# server and a SOCKS5 proxy with credentials that logs what it tunnels), reached from the host over a veth on a
# benchmarking /30 and host routes to 198.51.100.0/24 and 203.0.113.0/24. Nothing leaves the machine.
#
# Usage (as root):
#   stand-in-internet.sh up DIR     make it; DIR (new) keeps its pid, certificate and log (one line per DNS query and
#                                   per tunnel: "socks <user> <host>:<port>", "socks-denied <user>")
#   stand-in-internet.sh down DIR   stop the process it started (by pid), remove the namespace, veth, routes and DIR
set -euo pipefail

NS=cse2e-internet
LINK=cse2enet
HOST_SIDE=198.18.5.1
INSIDE=198.18.5.2
ROUTED=(198.51.100.0/24 203.0.113.0/24)
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
SERVERS='{"198.51.100.10": "allowed", "198.51.100.20": "open", "203.0.113.66": "blocked"}'
NAMES='{"allowed.test": "198.51.100.10", "open.test": "198.51.100.20", "blocked.test": "203.0.113.66"}'
DNS=198.51.100.53
SOCKS=203.0.113.80

[ $# = 2 ] || { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | grep '^#' | sed 's/^# \{0,1\}//' >&2; exit 2; }
MODE="$1" DIR="$2"

down() {
  if [ -f "$DIR/pid" ]; then
    pid="$(cat "$DIR/pid")"
    # only the process this script started: its command line names internet.py
    if grep -qa internet.py "/proc/$pid/cmdline" 2>/dev/null; then kill "$pid" 2>/dev/null || true; fi
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  ip link del "$LINK" 2>/dev/null || true # its routes go with it
  ip netns del "$NS" 2>/dev/null || true
  rm -rf "$DIR"
}

case "$MODE" in
  up)
    [ ! -e "$DIR" ] || { echo "stand-in-internet: $DIR exists; run '$0 down $DIR' first" >&2; exit 2; }
    mkdir -p "$DIR"
    trap 'down' ERR
    ip netns add "$NS"
    ip link add "$LINK" type veth peer name eth0 netns "$NS"
    ip addr add "$HOST_SIDE/30" dev "$LINK"
    ip link set "$LINK" up
    ip -n "$NS" addr add "$INSIDE/30" dev eth0
    ip -n "$NS" link set eth0 up
    ip -n "$NS" link set lo up
    ip -n "$NS" route add default via "$HOST_SIDE"
    for address in 198.51.100.10 198.51.100.20 203.0.113.66 "$DNS" "$SOCKS"; do
      ip -n "$NS" addr add "$address/32" dev lo
    done
    for routed in "${ROUTED[@]}"; do ip route add "$routed" via "$INSIDE" dev "$LINK"; done
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=stand-in -days 1 \
      -keyout "$DIR/key.pem" -out "$DIR/cert.pem" 2>/dev/null
    setsid ip netns exec "$NS" python3 -u "$REPO/runtime/src/test/resources/egress/internet.py" "$SERVERS" "$NAMES" \
      "$DNS" "$SOCKS" "$DIR/cert.pem" "$DIR/key.pem" tunnel s3cret </dev/null >"$DIR/log" 2>/dev/null &
    echo $! >"$DIR/pid"
    for _ in $(seq 1 100); do grep -qx ready "$DIR/log" && exit 0; sleep 0.1; done
    echo "stand-in-internet: the servers did not start" >&2
    down
    exit 1
    ;;
  down) down ;;
  *) echo "stand-in-internet: unknown mode '$MODE' (up or down)" >&2; exit 2 ;;
esac
