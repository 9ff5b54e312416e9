#!/usr/bin/env bash
# Makes N "hosts" on this machine: network namespaces, each with its own
# loopback and one interface (eth0) on a private bridge. The bridge lives in
# a namespace of its own ("switch"), so nothing is added to this machine's
# network: no address, no route, no uplink; the hosts reach each other and
# nothing else. Needs root (CAP_NET_ADMIN) and iproute2.
#
#   up.sh STATE_DIR N [--subnet A.B.C]      (default subnet 10.77.0, a /24)
#
# Host i gets address A.B.C.i and the name h<i>. STATE_DIR/hosts lists
# "address namespace name" per host, read by rsh-agent.sh, run.sh and down.sh.
# Namespace names carry a unique prefix, so several sets can coexist.
# Tear down with down.sh STATE_DIR.
set -euo pipefail
usage() { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
[ $# -ge 2 ] || usage
dir=$1
n=$2
shift 2
subnet=10.77.0
while [ $# -gt 0 ]; do
  case $1 in
    --subnet) subnet=$2; shift 2 ;;
    *) usage ;;
  esac
done
[ "$n" -ge 1 ] && [ "$n" -le 250 ] || usage
[ "$(id -u)" -eq 0 ] || { echo "up.sh: needs root (ip netns)" >&2; exit 1; }
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
[ ! -s "$dir/hosts" ] || { echo "up.sh: $dir already holds hosts; run down.sh first" >&2; exit 1; }

# Unique per set: the state directory's name (mktemp makes it unique) and a hash of its path.
prefix="sparc-$(printf %s "$dir" | cksum | cut -d' ' -f1)"
sw=$prefix-sw
echo "$sw" > "$dir/switch"
: > "$dir/hosts"

ip netns add "$sw"
ip -n "$sw" link set lo up
ip -n "$sw" link add br0 type bridge
ip -n "$sw" link set br0 up
for i in $(seq "$n"); do
  ns=$prefix-h$i
  ip netns add "$ns"
  printf '%s %s h%s\n' "$subnet.$i" "$ns" "$i" >> "$dir/hosts"
  ip -n "$ns" link set lo up
  ip -n "$sw" link add "p$i" type veth peer name eth0 netns "$ns"
  ip -n "$sw" link set "p$i" master br0
  ip -n "$sw" link set "p$i" up
  ip -n "$ns" addr add "$subnet.$i/24" dev eth0
  ip -n "$ns" link set eth0 up
done

# Without STP the bridge forwards at once; wait for it all the same, so a
# host is reachable when this script returns.
for i in $(seq "$n"); do
  for _ in $(seq 50); do
    ip -n "$sw" -d link show "p$i" | grep -q "state forwarding" && continue 2
    sleep 0.2
  done
  echo "up.sh: bridge port of h$i not forwarding" >&2
  exit 1
done
echo "netns: $n hosts on $subnet.0/24 ($prefix-h1..h$n), state in $dir"
