#!/usr/bin/env bash
# A rank stalled in the middle of a training step (SIGSTOP before its
# gradient all-reduce, injected with SPARC_FAULT): the other rank's watchdog
# reports it and the job exits non-zero within comm.timeout_s + 10 s.
# (mpirun's own abort on a dead rank does not exercise the watchdog; a
# stalled one does.) Usage: stalled_rank_test.sh SPARC_BINARY PROJECT_ROOT
set -u
sparc=$1
root=$2
if [ ! -f "$root/../shared/models/aidreams260K/model.bin" ]; then
  echo "skipped: shared data absent: aidreams260K"; exit 77
fi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
work=$(mktemp -d)
log="$work/log"
cleanup() {
  # A stopped rank survives mpirun's abort: wake and kill whatever is left.
  for pid in $(pgrep -f "run-dir $work/out" || true); do kill -CONT "$pid" 2>/dev/null; kill -KILL "$pid" 2>/dev/null; done
  rm -rf "$work"
}
trap cleanup EXIT
timeout_s=5
start=$(date +%s)
SPARC_FAULT=stop@step:3 SPARC_FAULT_RANK=1 timeout --kill-after=5 60 \
  mpirun -np 2 --oversubscribe -x SPARC_FAULT -x SPARC_FAULT_RANK "$sparc" --log-level warn train \
  --config "$root/configs/tiny-task-incremental.yaml" --run-dir "$work/out" \
  --set comm.timeout_s=$timeout_s > "$log" 2>&1
rc=$?
took=$(( $(date +%s) - start ))
grep -a "sparc:" "$log"
[ $rc -ne 0 ] || { echo "FAIL: exit 0"; exit 1; }
[ $rc -ne 124 ] && [ $rc -ne 137 ] || { echo "FAIL: hung until the outer timeout"; exit 1; }
grep -a -q "collective all_reduce (tag grad" "$log" || { echo "FAIL: no watchdog report on the grad all-reduce"; exit 1; }
grep -a -q "ranks not arrived: 1" "$log" || { echo "FAIL: the stalled rank is not named"; exit 1; }
# Start-up (model, data, PCA) takes a few seconds before step 3.
[ $took -le $((timeout_s + 10 + 15)) ] || { echo "FAIL: took $took s"; exit 1; }
echo "PASS: exit $rc after $took s"
