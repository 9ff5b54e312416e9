#!/usr/bin/env bash
# Runs the shipped tiny task- and domain-incremental configs, unchanged, for
# all five methods on 1 and 2 ranks with one sparc binary, keeping every run
# directory (results.json, library.safetensors, checkpoints). Two snapshots,
# made by two binaries, are compared by scripts/behaviour_compare.py: this is
# how a change that must not alter behaviour (a refactoring) is checked.
# Also leaves a run killed mid-task (SPARC_FAULT=kill@step:K) for the
# comparing binary to resume.
#
#   scripts/behaviour_snapshot.sh SPARC_BINARY OUT_DIR [METHOD ...]
set -euo pipefail
sparc=$(realpath "$1")
out=$2
shift 2
methods=("$@")
[ ${#methods[@]} -gt 0 ] || methods=(sparc sparc+lora prompt lora full)
root=$(cd "$(dirname "$0")/.." && pwd)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
mkdir -p "$out"
for setting in task domain; do
  cfg="$root/configs/tiny-$setting-incremental.yaml"
  for method in "${methods[@]}"; do
    for np in 1 2; do
      dir="$out/$setting/$method/np$np"
      rm -rf "$dir" && mkdir -p "$(dirname "$dir")"
      start=$(date +%s)
      if [ "$np" = 1 ]; then
        "$sparc" train --config "$cfg" --run-dir "$dir" --set "method=$method" > "$dir.log" 2>&1 || rc=$?
      else
        mpirun -np 2 --oversubscribe "$sparc" train --config "$cfg" --run-dir "$dir" \
          --set "method=$method" > "$dir.log" 2>&1 || rc=$?
      fi
      echo "$setting $method np$np: exit ${rc:-0}, $(( $(date +%s) - start )) s"
      unset rc
    done
  done
done
# A run killed at its 7th optimizer step (a checkpoint every 5 steps), to be
# resumed by the other binary.
dir="$out/killed"
rm -rf "$dir"
SPARC_FAULT=kill@step:7 "$sparc" train --config "$root/configs/tiny-task-incremental.yaml" \
  --run-dir "$dir" --set method=sparc+lora --set checkpoint.every_steps=5 > "$dir.log" 2>&1 || true
echo "killed run: $(ls "$dir/checkpoints" | tr '\n' ' ')"
