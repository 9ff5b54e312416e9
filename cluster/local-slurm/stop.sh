#!/usr/bin/env bash
# Stops the cluster that start.sh STATE_DIR started and everything it ran:
# cancels its jobs, stops slurmd, slurmctld and munged by their pid files,
# then kills any process still holding a file or working directory under
# STATE_DIR (job steps and their tasks outlive slurmd otherwise). Touches no
# other process. Safe to run twice, or on a half-started cluster.
#
#   stop.sh STATE_DIR [--remove]    (--remove: delete STATE_DIR afterwards)
set -uo pipefail
[ $# -ge 1 ] || { sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
dir=$1
[ -d "$dir" ] || exit 0
dir=$(cd "$dir" && pwd)
export SLURM_CONF=$dir/slurm.conf

pid_of() { [ -s "$1" ] && cat "$1" 2>/dev/null; }
alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null; }

# Jobs first, while slurmctld can still cancel them.
ctld=$(pid_of "$dir/slurmctld.pid")
if alive "$ctld" && [ -f "$SLURM_CONF" ]; then
  jobs=$(timeout 10 squeue -h -o %i 2>/dev/null || true)
  if [ -n "$jobs" ]; then
    # shellcheck disable=SC2086
    timeout 10 scancel --full $jobs 2>/dev/null || true
    for _ in $(seq 15); do
      [ -z "$(timeout 5 squeue -h -t R,CG -o %i 2>/dev/null)" ] && break
      sleep 1
    done
  fi
fi

stop_daemon() {
  local pid
  pid=$(pid_of "$1") || return 0
  alive "$pid" || return 0
  kill -TERM "$pid" 2>/dev/null
  for _ in $(seq 50); do alive "$pid" || return 0; sleep 0.2; done
  kill -KILL "$pid" 2>/dev/null
}
stop_daemon "$dir/slurmd.pid"
stop_daemon "$dir/slurmctld.pid"
stop_daemon "$dir/munge/munged.pid"

# Whatever is left and still uses the state directory (slurmstepd keeps the
# slurmd log open; tasks write their output there): ours to end. Never this
# script or its callers.
protected=" $$ "
p=$$
while [ "$p" -gt 1 ]; do
  p=$(awk '{print $4}' "/proc/$p/stat" 2>/dev/null || echo 1)
  protected+="$p "
done
for proc in /proc/[0-9]*; do
  pid=${proc#/proc/}
  case $protected in *" $pid "*) continue ;; esac
  uses=0
  case $(readlink "$proc/cwd" 2>/dev/null) in "$dir"|"$dir"/*) uses=1 ;; esac
  if [ $uses -eq 0 ]; then
    for fd in "$proc"/fd/*; do
      case $(readlink "$fd" 2>/dev/null) in "$dir"/*) uses=1; break ;; esac
    done
  fi
  if [ $uses -eq 1 ]; then
    kill -CONT "$pid" 2>/dev/null
    kill -KILL "$pid" 2>/dev/null
  fi
done

[ "${2:-}" = "--remove" ] && rm -rf "$dir"
exit 0
