#!/usr/bin/env bash
# launch/mpirun.sh builds the right mpirun command (--dry-run): rank count
# and host list from hosts x ranks per host, BLAS/OpenMP threads per rank =
# max(1, cores / ranks), GPU count passed to launch/rank.sh, `--resume auto`
# added only when absent and supported, run-as-root variables only as root.
# launch/rank.sh binds each local rank to its GPU. No MPI job is started.
# Usage: launcher_test.sh PROJECT_ROOT
set -u
root=$1
fail() { echo "FAIL: $*"; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"
# Stand-ins for sparc, one with --resume in its help and one without.
printf '#!/bin/sh\necho "  --resume TEXT  continue from a checkpoint"\n' > "$work/sparc-resume"
printf '#!/bin/sh\necho "  --config TEXT"\n' > "$work/sparc-plain"
chmod 755 "$work"/sparc-*
launcher=$root/launch/mpirun.sh
expect() {  # expect DESCRIPTION OUTPUT PATTERN
  grep -q -e "$3" <<< "$2" || fail "$1: '$3' not in: $2"
}
refuse() {
  if grep -q -e "$3" <<< "$2"; then fail "$1: '$3' in: $2"; fi
}

out=$("$launcher" --dry-run --sparc "$work/sparc-resume" --hosts a,b,c --ranks-per-host 4 \
      --cores-per-host 16 --gpus-per-host 4 --mca btl tcp,self --config x.yaml --set k=v 2>"$work/err") \
  || fail "dry run failed: $(cat "$work/err")"
expect "np = hosts x ranks" "$out" "mpirun -np 12 "
expect "host slots" "$out" "--host a:4\\\\,b:4\\\\,c:4 "
expect "threads = 16 / 4" "$out" "OMP_NUM_THREADS=4 OPENBLAS_NUM_THREADS=4 "
expect "GPUs to rank.sh" "$out" "SPARC_GPUS_PER_HOST=4 "
expect "variables exported to ranks" "$out" "-x OMP_NUM_THREADS -x OPENBLAS_NUM_THREADS -x SPARC_GPUS_PER_HOST"
expect "mca passed" "$out" "--mca btl tcp\\\\,self"
expect "train args then resume" "$out" "train --config x.yaml --set k=v --resume auto"
expect "root variables as root" "$out" "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1"
refuse "no oversubscription at 4 ranks on 16 cores" "$out" "--oversubscribe"

out=$("$launcher" --dry-run --sparc "$work/sparc-resume" -n 3 --cores-per-host 2 --gpus-per-host 0 \
      --config x.yaml --resume /ck/p.h5 2>"$work/err") || fail "dry run failed: $(cat "$work/err")"
expect "single host" "$out" "mpirun -np 3 --host localhost:3 "
expect "at least one thread" "$out" "OMP_NUM_THREADS=1 "
expect "oversubscribed" "$out" "--oversubscribe"
expect "own --resume kept" "$out" "train --config x.yaml --resume /ck/p.h5 $"
refuse "no second --resume" "$out" "--resume auto"

out=$("$launcher" --dry-run --sparc "$work/sparc-resume" --cores-per-host 8 --gpus-per-host 0 \
      --no-resume --config x.yaml 2>"$work/err") || fail "dry run failed: $(cat "$work/err")"
expect "default one rank without GPUs" "$out" "mpirun -np 1 "
expect "all cores to one rank" "$out" "OMP_NUM_THREADS=8 "
refuse "--no-resume" "$out" "--resume"

out=$("$launcher" --dry-run --sparc "$work/sparc-plain" --cores-per-host 8 --gpus-per-host 2 \
      --config x.yaml 2>"$work/err") || fail "dry run failed: $(cat "$work/err")"
expect "default ranks = GPUs" "$out" "mpirun -np 2 "
refuse "a binary without --resume gets none" "$out" "--resume"
expect "says why" "$(cat "$work/err")" "has no --resume"

printf 'n1 slots=8  # first\n\n# comment\nn2\n' > "$work/hostfile"
out=$("$launcher" --dry-run --sparc "$work/sparc-resume" --hostfile "$work/hostfile" -n 2 \
      --cores-per-host 8 --gpus-per-host 0 --config x.yaml 2>"$work/err") || fail "dry run failed: $(cat "$work/err")"
expect "hostfile" "$out" "mpirun -np 4 --host n1:2\\\\,n2:2 "

out=$("$launcher" --dry-run --sparc "$work/sparc-resume" -n 3 --gpus-per-host 2 --config x 2>&1) \
  && fail "3 ranks on 2 GPUs accepted: $out"
expect "ranks > GPUs refused" "$out" "3 ranks per host but 2 GPU(s)"

# NCCL's and CUDA's environment reaches every host's ranks (-x); the GPUs
# per host default to CUDA_VISIBLE_DEVICES's count; unrelated variables stay.
out=$(NCCL_DEBUG=INFO NCCL_SOCKET_IFNAME=eth0 CUDA_VISIBLE_DEVICES=3,5 PYTORCH_CUDA_ALLOC_CONF=x \
      NCCLX=1 "$launcher" --dry-run --sparc "$work/sparc-resume" --cores-per-host 8 --config x 2>&1) \
  || fail "dry run with NCCL variables failed: $out"
expect "NCCL variables exported" "$out" "-x NCCL_DEBUG -x NCCL_SOCKET_IFNAME"
expect "CUDA variables exported" "$out" "-x CUDA_VISIBLE_DEVICES "
expect "allocator settings exported" "$out" "-x PYTORCH_CUDA_ALLOC_CONF "
refuse "only NCCL_ names" "$out" "-x NCCLX"
expect "GPUs from CUDA_VISIBLE_DEVICES" "$out" "SPARC_GPUS_PER_HOST=2 .*mpirun -np 2 "
out=$(env -i PATH="$PATH" "$launcher" --dry-run --sparc "$work/sparc-resume" --gpus-per-host 0 \
      --config x 2>&1) || fail "dry run failed: $out"
refuse "nothing exported when unset" "$out" "-x NCCL_\|-x CUDA_"

# Not root: no run-as-root variables (nobody can read this checkout and the stand-in).
if [ "$(id -u)" -eq 0 ] && command -v setpriv >/dev/null; then
  out=$(setpriv --reuid=65534 --regid=65534 --clear-groups "$launcher" --dry-run \
        --sparc "$work/sparc-resume" --gpus-per-host 0 --config x.yaml 2>"$work/err") \
    || fail "as nobody: $(cat "$work/err")"
  refuse "no root variables for other users" "$out" "OMPI_ALLOW_RUN_AS_ROOT"
fi

# rank.sh: local rank -> GPU, from Open MPI's or Slurm's variable, within CUDA_VISIBLE_DEVICES.
rank=$root/launch/rank.sh
show='echo "${CUDA_VISIBLE_DEVICES-unset}"'
[ "$(env -u CUDA_VISIBLE_DEVICES SPARC_GPUS_PER_HOST=4 OMPI_COMM_WORLD_LOCAL_RANK=2 "$rank" sh -c "$show")" = 2 ] \
  || fail "rank.sh: local rank 2 of 4 GPUs"
[ "$(SPARC_GPUS_PER_HOST=2 CUDA_VISIBLE_DEVICES=5,7 SLURM_LOCALID=1 "$rank" sh -c "$show")" = 7 ] \
  || fail "rank.sh: Slurm local id 1 within CUDA_VISIBLE_DEVICES=5,7"
[ "$(SPARC_GPUS_PER_HOST=2 CUDA_VISIBLE_DEVICES=5,7 SLURM_LOCALID=0 OMPI_COMM_WORLD_LOCAL_RANK=1 "$rank" sh -c "$show")" = 7 ] \
  || fail "rank.sh: Open MPI's local rank before an inherited SLURM_LOCALID"
[ "$(env -u CUDA_VISIBLE_DEVICES SPARC_GPUS_PER_HOST=0 OMPI_COMM_WORLD_LOCAL_RANK=1 "$rank" sh -c "$show")" = unset ] \
  || fail "rank.sh: no GPUs, no binding"
SPARC_GPUS_PER_HOST=2 OMPI_COMM_WORLD_LOCAL_RANK=2 "$rank" true 2>/dev/null && fail "rank.sh: local rank 2 with 2 GPUs accepted"
# rank.sh under mpirun.sh (SPARC_TERM_VIA=USR2): mpirun forwards SIGUSR2 to
# the rank's process group; the command must see SIGTERM (and survive the USR2).
setsid env SPARC_TERM_VIA=USR2 "$rank" bash -c \
  'trap "exit 75" TERM; echo ready > '"$work/ready"'; for i in $(seq 200); do sleep 0.05; done; exit 3' &
group=$!
for _ in $(seq 100); do [ -s "$work/ready" ] && break; sleep 0.05; done
[ -s "$work/ready" ] || fail "rank.sh: the command did not start"
kill -USR2 -- -"$group"
rc=0
wait "$group" || rc=$?
[ $rc -eq 75 ] || fail "rank.sh: SIGUSR2 to the group gave exit $rc, expected the command's 75 on SIGTERM"
# A non-root rank that exits 75 stays until mpirun ends the job (SIGTERM), so
# mpirun's first non-zero exit is rank 0's, after its checkpoint is written.
SPARC_TERM_VIA=USR2 OMPI_COMM_WORLD_RANK=1 "$rank" sh -c 'exit 75' &
lingering=$!
sleep 1
kill -0 "$lingering" 2>/dev/null || fail "rank.sh: rank 1 left at once after exit 75"
kill -TERM "$lingering"
rc=0
wait "$lingering" || rc=$?
[ $rc -eq 75 ] || fail "rank.sh: lingering rank 1 exited $rc on SIGTERM, expected 75"
rc=0
SPARC_TERM_VIA=USR2 OMPI_COMM_WORLD_RANK=0 timeout 5 "$rank" sh -c 'exit 75' || rc=$?
[ $rc -eq 75 ] || fail "rank.sh: rank 0's exit 75 came back as $rc"
echo "PASS: launcher command lines, GPU binding, SIGUSR2 -> SIGTERM, exit 75 ordering"
