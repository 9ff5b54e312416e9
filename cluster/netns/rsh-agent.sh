#!/usr/bin/env bash
# Open MPI's remote-launch agent for the hosts of cluster/netns (instead of
# ssh): mpirun calls it as `rsh-agent.sh HOST COMMAND...` and it runs the
# command line with /bin/sh inside HOST's namespace. The hosts file comes from
# SPARC_NETNS_DIR (the STATE_DIR given to up.sh).
#
#   mpirun --mca plm_rsh_agent cluster/netns/rsh-agent.sh --host 10.77.0.1:1,10.77.0.2:1 ...
set -euo pipefail
: "${SPARC_NETNS_DIR:?rsh-agent.sh: set SPARC_NETNS_DIR to the state directory of up.sh}"
host=$1
shift
exec "$(dirname "$0")/run.sh" "$SPARC_NETNS_DIR" "$host" /bin/sh -c "$*"
