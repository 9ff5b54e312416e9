#!/usr/bin/env bash
# Runs in front of every rank, under mpirun (launch/mpirun.sh) or srun
# (launch/slurm.sbatch): binds the rank to one GPU by its local rank, then
# runs the command. With SPARC_GPUS_PER_HOST=0 (no GPUs) it only execs it;
# with SPARC_TERM_VIA=USR2 (set by launch/mpirun.sh) it passes SIGUSR2 on to
# the command as SIGTERM.
# Where CUDA_VISIBLE_DEVICES already lists the host's GPUs (Slurm sets it for
# the job's allocation), the rank takes the local-rank-th entry of that list.
#
#   rank.sh COMMAND [ARG]...
set -euo pipefail
# mpirun sets OMPI_COMM_WORLD_LOCAL_RANK, srun SLURM_LOCALID; mpirun inside an
# allocation inherits the batch step's SLURM_LOCALID, so Open MPI's comes first.
local_rank=${OMPI_COMM_WORLD_LOCAL_RANK:-${SLURM_LOCALID:-0}}
gpus=${SPARC_GPUS_PER_HOST:-0}
if [ "$gpus" -gt 0 ]; then
  if [ -n "${CUDA_VISIBLE_DEVICES:-}" ]; then
    IFS=, read -ra visible <<< "$CUDA_VISIBLE_DEVICES"
  else
    mapfile -t visible < <(seq 0 $((gpus - 1)))
  fi
  if [ "$local_rank" -ge "${#visible[@]}" ]; then
    echo "rank.sh: local rank $local_rank on $(hostname) but only ${#visible[@]} GPU(s) there (${visible[*]})" >&2
    exit 2
  fi
  export CUDA_VISIBLE_DEVICES=${visible[$local_rank]}
fi
if [ "${SPARC_TERM_VIA:-}" = USR2 ]; then
  # Under launch/mpirun.sh: mpirun does not forward SIGTERM (it kills the job
  # instead), so the launcher turns a SIGTERM into SIGUSR2, which mpirun
  # forwards to every rank on every host. Here it becomes the SIGTERM on
  # which sparc checkpoints and exits 75.
  # mpirun signals the whole process group: the command ignores SIGUSR2 itself.
  (trap '' USR2; exec "$@") &
  child=$!
  trap 'kill -TERM "$child" 2>/dev/null' USR2 TERM INT
  while kill -0 "$child" 2>/dev/null; do wait "$child" || true; done
  rc=0
  wait "$child" || rc=$?
  # After a stop, sparc's other ranks exit 75 at once while rank 0 may still
  # be writing the checkpoint, and mpirun ends the job at the first non-zero
  # exit, killing rank 0 mid-write. So they linger (at most 60 s) until
  # rank 0's own exit 75 ends the job.
  if [ $rc -eq 75 ] && [ "${OMPI_COMM_WORLD_RANK:-0}" != 0 ]; then
    sleep 60 &
    sleeper=$!
    trap 'kill "$sleeper" 2>/dev/null; exit 75' TERM INT USR2
    wait "$sleeper" || true
  fi
  exit $rc
fi
exec "$@"
