#!/usr/bin/env bash
# SPEC 3 start-up agreement under mpirun -np 2: a data file missing on one
# rank only, and a config that differs on one rank, stop every rank with
# exit 2 and the reason, within seconds (never a hang in a collective).
# Usage: startup_agreement_test.sh SPARC_BINARY PROJECT_ROOT
set -u
sparc=$1
root=$2
. "$(dirname "$0")/mpi_test_lib.sh"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

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

# expect_exit2 NAME PATTERN DIR_OF_RANK_1 [extra arguments of rank 1]: both
# ranks must exit 2 within seconds, each printing PATTERN.
expect_exit2() {
  local name=$1 pattern=$2 dir1=$3
  shift 3
  local log="$work/log-$name" start rc took
  start=$(date +%s)
  timeout 120 mpirun -np 1 -wdir "$work/a" "$sparc" train --config "$work/run.yaml" --run-dir "$work/out-$name" : \
                     -np 1 -wdir "$dir1" "$sparc" train --config "$work/run.yaml" --run-dir "$work/out-$name" "$@" \
    > "$log" 2>&1
  rc=$?
  took=$(( $(date +%s) - start ))
  cat "$log"
  [ $rc -eq 2 ] || fail "$name: exit $rc, expected 2"
  [ $took -le 30 ] || fail "$name: took $took s"
  # grep -o: lines of two ranks may share one line of the log.
  [ "$(grep -a -o "$pattern" "$log" | wc -l)" -eq 2 ] || fail "$name: both ranks must print '$pattern'"
}

expect_exit2 missing-file 'rank 1: /proc/self/cwd/data/train.jsonl: cannot open' "$work/b"
expect_exit2 differing-config 'config: differs between ranks: rank(s) 1' "$work/a" --set train.epochs=2
echo "PASS (missing file and differing config: exit 2 on every rank)"
