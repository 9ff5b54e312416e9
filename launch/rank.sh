#!/usr/bin/env bash
# Runs in front of every rank, under mpirun (launch/mpirun.sh) or srun
# (launch/slurm.sbatch): binds the rank to one GPU by its local rank, then
# execs the command. With SPARC_GPUS_PER_HOST=0 (no GPUs) it only execs.
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
exec "$@"
