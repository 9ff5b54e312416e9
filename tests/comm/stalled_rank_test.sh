#!/usr/bin/env bash
# A rank stalled in the middle of a training step (SIGSTOP before its
# gradient all-reduce, injected with SPARC_FAULT): the other rank's watchdog
# reports it and the job exits non-zero within comm.timeout_s + 10 s.
# (mpirun's own abort on a dead rank does not exercise the watchdog; a
# stalled one does.) Usage: stalled_rank_test.sh SPARC_BINARY PROJECT_ROOT
set -u
sparc=$1
root=$2
. "$(dirname "$0")/mpi_test_lib.sh"
work=$(mktemp -d)
log="$work/log"
cleanup() {
  # A stopped rank survives mpirun's abort: wake and kill whatever is left.
  for pid in $(pgrep -f "run-dir $work/out" || true); do kill -CONT "$pid" 2>/dev/null; kill -KILL "$pid" 2>/dev/null; done
  rm -rf "$work"
}
trap cleanup EXIT
# The watchdog timeout: short, but every collective before the stall must
# finish within it; slower builds (sanitizers) raise it.
timeout_s=${SPARC_STALLED_RANK_TIMEOUT_S:-5}
startup_s=${SPARC_STALLED_RANK_STARTUP_S:-15}  # before step 3: model, data, PCA
start=$(date +%s)
SPARC_FAULT=stop@step:3 SPARC_FAULT_RANK=1 timeout --kill-after=5 $((timeout_s + 40 + startup_s)) \
  mpirun -np 2 --oversubscribe -x SPARC_FAULT -x SPARC_FAULT_RANK "$sparc" --log-level warn train \
  --config "$root/configs/tiny-task-incremental.yaml" --run-dir "$work/out" \
  --set comm.timeout_s=$timeout_s > "$log" 2>&1
rc=$?
took=$(( $(date +%s) - start ))
grep -a "sparc:" "$log"
[ $rc -ne 0 ] || fail "exit 0"
[ $rc -ne 124 ] && [ $rc -ne 137 ] || fail "hung until the outer timeout"
grep -a -q "collective all_reduce (tag grad" "$log" || fail "no watchdog report on the grad all-reduce"
grep -a -q "ranks not arrived: 1" "$log" || fail "the stalled rank is not named"
# Start-up (model, data, PCA) takes a few seconds before step 3.
[ $took -le $((timeout_s + 10 + startup_s)) ] || fail "took $took s"
echo "PASS: exit $rc after $took s"
