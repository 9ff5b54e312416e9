#!/usr/bin/env bash
# Runs launch/mpirun.sh across the hosts that up.sh STATE_DIR made: mpirun
# starts on h1, reaches the other hosts through rsh-agent.sh instead of ssh,
# and ranks talk TCP over the bridge only (btl tcp,self; Open MPI's TCP
# traffic limited to the hosts' subnet). The hosts share this machine's
# cores, so each host counts nproc / N of them for its thread settings.
#
#   launch.sh STATE_DIR [launch/mpirun.sh OPTIONS] [--] SPARC_TRAIN_ARGS...
#
# Default: one rank per host. Exit status: launch/mpirun.sh's.
set -euo pipefail
[ $# -ge 2 ] || { sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
dir=$(cd "$1" && pwd)
shift
[ -s "$dir/hosts" ] || { echo "launch.sh: no hosts in $dir (run up.sh first)" >&2; exit 2; }
addresses=$(awk '{print $1}' "$dir/hosts" | paste -sd,)
n=$(wc -l < "$dir/hosts")
subnet=$(awk 'NR==1 {sub(/\.[0-9]+$/, ".0/24", $1); print $1}' "$dir/hosts")
cores=$(( $(nproc) / n ))
[ "$cores" -ge 1 ] || cores=1
export SPARC_NETNS_DIR=$dir
exec "$here/run.sh" "$dir" h1 "$here/../../launch/mpirun.sh" \
  --hosts "$addresses" --ranks-per-host 1 --cores-per-host "$cores" \
  --mca plm_rsh_agent "$here/rsh-agent.sh" \
  --mca btl tcp,self --mca btl_tcp_if_include "$subnet" --mca oob_tcp_if_include "$subnet" \
  "$@"
