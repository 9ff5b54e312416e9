#!/usr/bin/env bash
# `sparc bench step` under mpirun -np 2: the gradient all-reduce moves exactly
# 4 bytes per trainable parameter per step (SPEC 3: only the trainable
# gradients cross the network), read from the communicator's counters.
# Usage: bench_step_test.sh SPARC_BINARY PROJECT_ROOT
set -u
sparc=$1
root=$2
. "$(dirname "$0")/mpi_test_lib.sh"
for method in sparc sparc+lora; do
  line=$(timeout 300 mpirun -np 2 --oversubscribe "$sparc" --log-level warn bench step \
           --config "$root/configs/tiny-task-incremental.yaml" --set method=$method --steps 3 --json) ||
    fail "bench step ($method) failed"
  echo "$line"
  python3 - "$line" <<'PY' || exit 1
import json, sys
r = json.loads(sys.argv[1])
for key in ["tokens_per_s", "ms_per_step", "grad_allreduce_bytes_per_step", "gather_bytes_per_step",
            "peak_rss_mb", "world_size", "dtype", "d_model", "n_layers", "n_heads", "n_kv_heads",
            "ffn_dim", "vocab", "seq_len", "batch", "prompt_len", "pca_k", "method"]:
    assert key in r, "missing key " + key
assert r["world_size"] == 2, r
assert r["grad_allreduce_bytes_per_step"] == 4 * r["trainable_params"], r
print("ok:", r["method"], r["grad_allreduce_bytes_per_step"], "bytes per step")
PY
done
echo PASS
