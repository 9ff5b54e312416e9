#!/usr/bin/env bash
# Layer sharding's memory (SPEC 3): on a generated llama of 1.2 GB (f32,
# 32 blocks of D=640, ffn 4096), `sparc bench step` on 2 ranks with
# model.sharding=layer and =none; each rank's peak resident memory above its
# resident memory just before loading the model must be at most 0.6 of the
# unsharded run's (each rank keeps half the blocks plus at most two gathered
# ones). Units of one example, so that both ranks compute in both runs.
# Usage: sharded_memory_test.sh SPARC_BINARY PROJECT_ROOT
set -u
sparc=$1
root=$2
. "$(dirname "$0")/mpi_test_lib.sh"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
timeout 300 "$sparc" --log-level warn random-model --out "$tmp/model" --dim 640 --layers 32 \
  --heads 10 --ffn 4096 --vocab 512 || fail "random-model failed"
du -sh "$tmp/model"
declare -A growth
for sharding in none layer; do
  line=$(timeout 600 mpirun -np 2 --oversubscribe "$sparc" --log-level warn bench step \
           --config "$root/configs/tiny-task-incremental.yaml" --steps 2 --json \
           --set model.path="$tmp/model" --set model.tokenizer=bytes \
           --set model.sharding=$sharding --set method=sparc --set train.batch_size=2 --set train.unit_size=1 \
           --set prompt.length=4 --set pca.k=8 --set train.max_train_examples=32) ||
    fail "bench step (sharding $sharding) failed"
  echo "$line"
  growth[$sharding]=$(python3 -c 'import json,sys; print(" ".join(map(str, json.loads(sys.argv[1])["model_rss_growth_mb"])))' "$line")
done
python3 - "${growth[none]}" "${growth[layer]}" <<'PY' || exit 1
import sys
none = [float(x) for x in sys.argv[1].split()]
layer = [float(x) for x in sys.argv[2].split()]
assert len(none) == len(layer) == 2, (none, layer)
for r, (n, l) in enumerate(zip(none, layer)):
    ratio = l / n
    print(f"rank {r}: peak growth {l:.0f} MB sharded vs {n:.0f} MB whole: ratio {ratio:.3f}")
    assert n > 1000, f"the unsharded run should hold the 1.2 GB model, grew {n} MB"
    assert ratio <= 0.6, f"rank {r}: sharded peak growth is {ratio:.3f} of the unsharded one"
PY
echo PASS
