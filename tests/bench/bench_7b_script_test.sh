#!/usr/bin/env bash
# scripts/bench_7b.sh end to end at a tiny shape (the 7B run itself is the
# lead's, not CI's): the model is written, 2 sharded ranks train it to a
# results.json and run bench step, each rank's peak memory is read from
# outside, and the bytes gathered per step equal the shape's own count:
# 2 blocks x 2 gathers (forward, backward) x this rank's half of a block
# (D=64, FFN 128: 4 D^2 + 3 D F + 2 D = 41,088 values, half of them in
# bf16: 41,088 B) = 164,352 B, plus the vocabulary's lookups (one unit per
# rank and step: its tokens' embeddings, at most 4 x 64 ids, and the 2
# class rows: counts, ids and owned rows of D=64 bf16, each rank owning at
# most 150 of the 300 rows: at most 8 + 8 x 256 + 150 x 128 + 8 + 8 x 2 +
# 2 x 128 = 21,536 B); the run's results.json is complete.
# Usage: bench_7b_script_test.sh SPARC_BINARY PROJECT_ROOT
set -u
sparc=$1
root=$2
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
SPARC=$sparc timeout 600 "$root/scripts/bench_7b.sh" --out "$tmp/out" --model "$tmp/model" --steps 1 \
  --shape "--dim 64 --layers 2 --heads 4 --ffn 128 --vocab 300 --untie-embeddings" > "$tmp/log" 2>&1 ||
  { tail -n 40 "$tmp/log"; echo "FAIL: bench_7b.sh failed"; exit 1; }
/usr/bin/python3 - "$tmp/out" <<'PY' || exit 1
import json, sys
out = sys.argv[1]
s = json.load(open(f"{out}/summary.json"))
print(json.dumps(s))
assert len(s["train_peak_rss_gib_per_rank"]) == 2, s
assert len(s["step_peak_rss_gib_per_rank"]) == 2, s
assert all(0.02 < g < 9 for g in s["train_peak_rss_gib_per_rank"] + s["step_peak_rss_gib_per_rank"]), s
vocab = s["vocab_gather_bytes_per_step_per_rank"]
assert s["gather_bytes_per_step_per_rank"] - vocab == 164352, (s["gather_bytes_per_step_per_rank"], vocab)
assert 0 < vocab <= 21536, vocab
assert s["ms_per_step"] > 0 and s["tokens_per_s"] > 0 and 0 < s["mfu_no_recompute"] < 1, s
# configs/bench-7b.yaml: one task, 16 test examples (eval.max_examples), a finished run.
assert s["test_sizes"] == [16], s["test_sizes"]
assert len(s["accuracy_matrix"]) == 1 and 0 <= s["accuracy_matrix"][0][0] <= 1, s
assert s["ppl_before"] > 1 and s["ppl_before"] == s["ppl_after"], s  # frozen model: equal
PY
echo PASS
