#!/usr/bin/env bash
# SPEC 3 start-up agreement under mpirun -np 2: a data file missing on one
# rank only, and a config that differs on one rank, stop every rank with
# exit 2 and the reason, within seconds (never a hang in a collective).
# Usage: startup_agreement_test.sh SPARC_BINARY PROJECT_ROOT
set -u
sparc=$1
root=$2
model="$root/../shared/models/aidreams260K/model.bin"
if [ ! -f "$model" ]; then echo "skipped: shared data absent: $model"; exit 77; fi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

# Rank 0 runs in a/ (which has the data), rank 1 in b/ (which does not); the
# config names the file through /proc/self/cwd, so its text is the same on both.
mkdir -p "$work/a/data" "$work/b"
printf '{"text": "the moon glows", "label": 1}\n{"text": "the data node", "label": 0}\n%.0s' {1..20} > "$work/a/data/train.jsonl"
cat > "$work/run.yaml" <<YAML
model: {path: $model, tokenizer: ${model%model.bin}tokenizer.bin}
prompt: {length: 2}
pca: {k: 4}
train: {epochs: 1, batch_size: 8}
tasks:
  - name: t
    train: /proc/self/cwd/data/train.jsonl
    test: /proc/self/cwd/data/train.jsonl
    verbalizer: {"0": "data", "1": "light"}
YAML

start=$(date +%s)
timeout 120 mpirun -np 1 -wdir "$work/a" "$sparc" train --config "$work/run.yaml" --run-dir "$work/out1" : \
                   -np 1 -wdir "$work/b" "$sparc" train --config "$work/run.yaml" --run-dir "$work/out1" \
  > "$work/log1" 2>&1
rc=$?
took=$(( $(date +%s) - start ))
cat "$work/log1"
[ $rc -eq 2 ] || fail "missing file on rank 1: exit $rc, expected 2"
[ $took -le 30 ] || fail "missing file on rank 1: took $took s"
[ "$(grep -a -o 'rank 1: /proc/self/cwd/data/train.jsonl: cannot open' "$work/log1" | wc -l)" -eq 2 ] ||
  fail "both ranks must print rank 1's reason"

start=$(date +%s)
timeout 120 mpirun -np 1 -wdir "$work/a" "$sparc" train --config "$work/run.yaml" --run-dir "$work/out2" : \
                   -np 1 -wdir "$work/a" "$sparc" train --config "$work/run.yaml" --run-dir "$work/out2" \
                   --set train.epochs=2 > "$work/log2" 2>&1
rc=$?
took=$(( $(date +%s) - start ))
cat "$work/log2"
[ $rc -eq 2 ] || fail "config differing on rank 1: exit $rc, expected 2"
[ $took -le 30 ] || fail "config differing on rank 1: took $took s"
[ "$(grep -a -o 'config: differs between ranks: rank(s) 1' "$work/log2" | wc -l)" -eq 2 ] ||
  fail "both ranks must name the differing rank"
echo "PASS (missing file and differing config: exit 2 on every rank)"
