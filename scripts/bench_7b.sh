#!/usr/bin/env bash
# The 7B run of issue 20 (docs/scaling.md): writes a Llama-2-7B shaped model
# with random weights (13.5 GB in bf16; skipped when present), trains method
# sparc on it with configs/bench-7b.yaml on 2 ranks with layer sharding, and
# runs `sparc bench step` on it; each rank's peak resident memory is measured
# from outside by scripts/peak_memory.py (VmHWM). Reports step time, tokens/s,
# MFU (model FLOPs, recomputation not counted) against `sparc bench gemm
# --dtype bf16`, and bytes gathered. Not in CI: ~14 GB of disk and tens of
# minutes on an otherwise idle machine.
#
# Usage: scripts/bench_7b.sh [--out DIR] [--model DIR] [--ranks N] [--steps N]
#          [--shape "--dim D --layers L --heads H --ffn F --vocab V"] [--keep-model]
#   --shape: a smaller model (the script's own check); default the 7B preset.
#   Results: DIR/summary.json (default build/bench-7b).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
sparc=${SPARC:-$root/build/sparc}
out=$root/build/bench-7b
model=$root/build/llama2-7b-random
ranks=2
steps=2
shape="--preset llama2-7b"
while [ $# -gt 0 ]; do
  case $1 in
    --out) out=$2; shift 2 ;;
    --model) model=$2; shift 2 ;;
    --ranks) ranks=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --shape) shape="$2 --dtype bf16"; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
mkdir -p "$out"
py=/usr/bin/python3
peak="$py $root/scripts/peak_memory.py"
export OMPI_MCA_rmaps_base_oversubscribe=1
# Threads per rank: the node's processors shared by the ranks, for the ranks
# and for the GEMM peak that MFU divides by alike.
per=$(( $(nproc) / ranks )); [ "$per" -ge 1 ] || per=1
export OMP_NUM_THREADS=$per OPENBLAS_NUM_THREADS=$per
mpi=(mpirun -np "$ranks" --bind-to none -x OMP_NUM_THREADS -x OPENBLAS_NUM_THREADS)
[ "$(id -u)" = 0 ] && mpi+=(--allow-run-as-root)

echo "== model: $model"
if [ ! -f "$model/model.safetensors" ]; then
  # shellcheck disable=SC2086
  $peak "$out/write_memory.json" -- "$sparc" --log-level warn random-model --out "$model" $shape
fi
du -sh "$model"

echo "== bench gemm --dtype bf16 (the MFU denominator)"
gemm=$("$sparc" --log-level warn --threads "$per" bench gemm --dtype bf16 --json | tail -n 1)
echo "$gemm"
gflops=$($py -c 'import json,sys; print(json.loads(sys.argv[1])["gflops_per_rank"])' "$gemm")

echo "== train: $ranks ranks, layer sharding"
rm -rf "$out/run"
start=$(date +%s)
$peak "$out/train_memory.json" -- "${mpi[@]}" "$sparc" --log-level info train \
  --config "$root/configs/bench-7b.yaml" --run-dir "$out/run" --set model.path="$model" \
  2>&1 | tee "$out/train.log"
train_s=$(( $(date +%s) - start ))
[ -f "$out/run/results.json" ] || { echo "no results.json" >&2; exit 1; }

# bench step times `steps` steps after one warm-up step: more than the
# config's 2 steps, so its epochs are not the limit here.
echo "== bench step: $ranks ranks, layer sharding, $steps steps"
$peak "$out/step_memory.json" -- "${mpi[@]}" "$sparc" --log-level warn bench step \
  --config "$root/configs/bench-7b.yaml" --set model.path="$model" --steps "$steps" \
  --set train.epochs=1000 \
  --peak-gflops "$gflops" --json | tee "$out/step.json"

$py - "$out" "$train_s" "$gemm" <<'PY'
import json, sys
out, train_s, gemm = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
tm = json.load(open(f"{out}/train_memory.json"))
sm = json.load(open(f"{out}/step_memory.json"))
step = json.loads(open(f"{out}/step.json").read().strip().splitlines()[-1])
res = json.load(open(f"{out}/run/results.json"))
gib = lambda kb: round(kb / 2**20, 2)
summary = {
    "measured": "all figures below are measured by this script on this machine",
    "train_wall_s": train_s,
    "train_peak_rss_gib_per_rank": [gib(r["vmhwm_kb"]) for r in tm["ranks"]],
    "train_max_rss_file_gib_per_rank": [gib(r["max_rss_file_kb"]) for r in tm["ranks"]],
    "step_peak_rss_gib_per_rank": [gib(r["vmhwm_kb"]) for r in sm["ranks"]],
    "under_9_gib": all(r["vmhwm_kb"] < 9 * 2**20 for r in tm["ranks"] + sm["ranks"]),
    "ms_per_step": step["ms_per_step"], "tokens_per_s": step["tokens_per_s"],
    "mfu_no_recompute": step["mfu"], "gemm_bf16_gflops_per_rank": gemm["gflops_per_rank"],
    "model_gflops_per_s_per_rank": step["model_gflops_per_s_per_rank"],
    "gather_bytes_per_step_per_rank": step["gather_bytes_per_step"],
    "vocab_gather_bytes_per_step_per_rank": step["vocab_gather_bytes_per_step"],
    "accuracy_matrix": res.get("accuracy_matrix"), "test_sizes": res.get("test_sizes"),
    "ppl_before": res.get("ppl_before"), "ppl_after": res.get("ppl_after"),
}
json.dump(summary, open(f"{out}/summary.json", "w"), indent=1)
print(json.dumps(summary, indent=1))
PY
