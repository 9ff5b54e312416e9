#!/usr/bin/env bash
# Numerical faults (NaN/Inf gradients) on 2 ranks: rank 1 alone poisons its
# gradients (SPARC_FAULT=nan@step:A-B, SPARC_FAULT_RANK=1). The NaN travels
# in the step's gradient all-reduce, so rank 0 skips the same steps; a short
# run of bad steps is skipped and training finishes; train.max_bad_steps in a
# row stop every rank with exit 2, and the last checkpoint (written before
# the bad steps) stays the newest and verifies.
# Usage: nan_gradient_test.sh SPARC_BINARY PROJECT_ROOT
set -u
sparc=$1
root=$2
. "$(dirname "$0")/mpi_test_lib.sh"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
run() {  # run NAME FAULT_RANGE [--set ...]
  local name=$1 range=$2
  shift 2
  SPARC_FAULT=nan@step:$range SPARC_FAULT_RANK=1 timeout 300 mpirun -np 2 --oversubscribe \
    -x SPARC_FAULT -x SPARC_FAULT_RANK "$sparc" train \
    --config "$root/configs/tiny-task-incremental.yaml" --run-dir "$work/$name" \
    --set train.epochs=1 --set train.max_train_examples=64 --set eval.max_examples=40 \
    --set train.max_bad_steps=3 --set checkpoint.every_steps=1 "$@" > "$work/$name.log" 2>&1
}

# Two bad steps (2 and 3) in a row: skipped, the run completes.
run skip 2-3
rc=$?
[ $rc -eq 0 ] || { tail -5 "$work/skip.log"; fail "a run with 2 bad steps exited $rc"; }
n=$(grep -a -c "non-finite gradient, step skipped" "$work/skip.log")
# Rank 0 never saw a NaN of its own: its warnings prove the sum carried it.
[ "$n" -eq 4 ] || fail "expected 2 skipped steps reported by each of 2 ranks, got $n lines"
[ -f "$work/skip/results.json" ] || fail "no results.json"
grep -a -q '"accuracy_matrix"' "$work/skip/results.json" || fail "results.json lacks the accuracy matrix"
echo "ok: 2 bad steps skipped on both ranks, run completed"

# Three in a row (steps 2-4) with max_bad_steps 3: every rank stops with exit 2.
run stop 2-4
rc=$?
[ $rc -eq 2 ] || { tail -5 "$work/stop.log"; fail "expected exit 2, got $rc"; }
grep -a -q "3 optimizer steps in a row had non-finite gradients" "$work/stop.log" ||
  fail "no message naming the bad steps"
latest=$(cat "$work/stop/checkpoints/latest")
[ "$latest" = "ckpt-00000001.h5" ] || fail "latest checkpoint is $latest, expected the one of step 1"
(cd "$work/stop/checkpoints" && sha256sum -c --quiet "$latest.sha256") || fail "latest checkpoint does not verify"
echo "ok: 3 bad steps stopped both ranks with exit 2; $latest (step 1) intact"
echo PASS
