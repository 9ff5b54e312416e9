#!/usr/bin/env bash
# Removes the hosts that up.sh STATE_DIR made: kills every process still
# inside one of their namespaces (stopped ones included), then deletes the
# namespaces (their interfaces and the bridge go with them). Touches nothing
# else. Safe to run twice, or after a half-finished up.sh.
#
#   down.sh STATE_DIR [--remove]    (--remove: delete STATE_DIR afterwards)
set -uo pipefail
[ $# -ge 1 ] || { sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
dir=$1
[ -d "$dir" ] || exit 0
namespaces=$(awk '{print $2}' "$dir/hosts" 2>/dev/null; cat "$dir/switch" 2>/dev/null)
for ns in $namespaces; do
  [ -e "/run/netns/$ns" ] || continue
  for _ in 1 2 3; do
    pids=$(ip netns pids "$ns" 2>/dev/null)
    [ -n "$pids" ] || break
    for pid in $pids; do kill -CONT "$pid" 2>/dev/null; kill -KILL "$pid" 2>/dev/null; done
    sleep 0.2
  done
  ip netns del "$ns" 2>/dev/null || echo "down.sh: could not delete namespace $ns" >&2
done
[ "${2:-}" = "--remove" ] && rm -rf "$dir"
exit 0
