#!/usr/bin/env bash
# The reference the cluster tests compare against: the shortened tiny run as
# a plain `mpirun -np 2` on this host (docs/distributed.md), no launcher.
# Usage: reference_run.sh SPARC_BINARY PROJECT_ROOT OUT_DIR
set -u
sparc=$1
root=$2
out=$3
. "$(dirname "$0")/cluster_lib.sh"
rm -rf "$out"
mkdir -p "$out"
OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 \
  timeout --kill-after=5 300 mpirun -np 2 --oversubscribe "$sparc" train "${job_args[@]}" \
  --run-dir "$out/run" > "$out/log" 2>&1
rc=$?
[ $rc -eq 0 ] || { tail -n 20 "$out/log"; fail "reference run exited $rc"; }
[ -s "$out/run/results.json" ] || fail "no results.json"
grep -a -q "on 2 rank(s)" "$out/log" || fail "the reference did not run on 2 ranks"
echo "PASS: reference in $out/run"
