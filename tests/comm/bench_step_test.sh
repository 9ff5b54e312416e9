#!/usr/bin/env bash
# `sparc bench step` under mpirun -np 2: only the trainable gradients cross
# the network (SPEC 3), read from the communicator's counters. Deterministic
# (the default): 8 bytes per trainable parameter (int64 fixed point) plus one
# f64 per trainable tensor (the MAX that agrees on the scales); with
# train.deterministic=false, 4 bytes per parameter (a float all-reduce).
# The tiny config's trainable tensors: sparc the prompt coefficients (1);
# sparc+lora those and A, B of q and v in 4 layers (1 + 2*2*4 = 17).
# Usage: bench_step_test.sh SPARC_BINARY PROJECT_ROOT
set -u
sparc=$1
root=$2
. "$(dirname "$0")/mpi_test_lib.sh"
for run in "sparc 1 true" "sparc+lora 17 true" "sparc+lora 17 false"; do
  read -r method tensors deterministic <<<"$run"
  line=$(timeout 300 mpirun -np 2 --oversubscribe "$sparc" --log-level warn bench step \
           --config "$root/configs/tiny-task-incremental.yaml" --set method=$method \
           --set train.deterministic=$deterministic --steps 3 --json) ||
    fail "bench step ($method) failed"
  echo "$line"
  python3 - "$line" "$tensors" "$deterministic" <<'PY' || exit 1
import json, sys
r = json.loads(sys.argv[1])
for key in ["tokens_per_s", "ms_per_step", "grad_allreduce_bytes_per_step", "gather_bytes_per_step",
            "peak_rss_mb", "world_size", "dtype", "d_model", "n_layers", "n_heads", "n_kv_heads",
            "ffn_dim", "vocab", "seq_len", "batch", "prompt_len", "pca_k", "method"]:
    assert key in r, "missing key " + key
assert r["world_size"] == 2, r
tensors, deterministic = int(sys.argv[2]), sys.argv[3] == "true"
want = 8 * r["trainable_params"] + 8 * tensors if deterministic else 4 * r["trainable_params"]
assert r["grad_allreduce_bytes_per_step"] == want, (want, r)
print("ok:", r["method"], r["grad_allreduce_bytes_per_step"], "bytes per step")
PY
done
echo PASS
