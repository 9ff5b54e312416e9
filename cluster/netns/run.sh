#!/usr/bin/env bash
# Runs a command on one of the hosts that up.sh STATE_DIR made: inside its
# network namespace, with its own host name (h1, h2, ...) in a private UTS
# namespace, so Open MPI sees separate nodes. HOST is a name (h2) or an
# address (10.77.0.2).
#
#   run.sh STATE_DIR HOST COMMAND [ARG]...
set -euo pipefail
[ $# -ge 3 ] || { sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
dir=$1
host=$2
shift 2
read -r ns name < <(awk -v h="$host" '$1 == h || $3 == h {print $2, $3; exit}' "$dir/hosts")
[ -n "${ns:-}" ] || { echo "run.sh: no host $host in $dir/hosts" >&2; exit 2; }
exec ip netns exec "$ns" unshare --uts /bin/sh -c 'hostname "$0" && exec "$@"' "$name" "$@"
