"""Compares two sparc run directories (results.json, library.safetensors,
metrics.jsonl), independently of sparc's own code.

  compare_runs.py exact DIR_A DIR_B   every field and every tensor bit-identical
                                      (timing fields excepted)
Exits 1 with the differences listed."""
import json
import struct
import sys

import numpy as np

TIMING = {"tokens_per_s"}


def tensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        body = f.read()
    dtypes = {"F32": np.float32, "F64": np.float64, "I64": np.int64}
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        out[name] = np.frombuffer(body[a:b], dtype=dtypes[info["dtype"]]).reshape(info["shape"])
    return out, header.get("__metadata__", {})


def metrics(path):
    lines = []
    with open(path) as f:
        for line in f:
            d = json.loads(line)
            lines.append({k: v for k, v in d.items() if k not in TIMING})
    return lines


def main():
    mode, a, b = sys.argv[1:4]
    problems = []
    ra = json.load(open(a + "/results.json"))
    rb = json.load(open(b + "/results.json"))
    if mode != "exact":
        sys.exit(f"compare_runs.py: unknown mode {mode} (expected exact)")
    for key in sorted(set(ra) | set(rb)):
        if ra.get(key) != rb.get(key):
            problems.append(f"results.json {key}: {ra.get(key)} != {rb.get(key)}")
    if metrics(a + "/metrics.jsonl") != metrics(b + "/metrics.jsonl"):
        problems.append("metrics.jsonl differs (timing fields aside)")
    ta, ma = tensors(a + "/library.safetensors")
    tb, mb = tensors(b + "/library.safetensors")
    if sorted(ta) != sorted(tb):
        problems.append(f"tensor names differ: {sorted(set(ta) ^ set(tb))}")
    if ma != mb:
        problems.append("library metadata differs")
    for name in sorted(set(ta) & set(tb)):
        x, y = ta[name], tb[name]
        if x.shape != y.shape:
            problems.append(f"{name}: shape {x.shape} != {y.shape}")
            continue
        if x.tobytes() != y.tobytes():
            problems.append(f"{name}: not bit-identical (max diff {np.abs(x - y).max():.3g})")
    for p in problems:
        print("DIFF:", p)
    print(f"{mode}: {len(ta)} tensors, accuracy rows {len(ra['accuracy_matrix'])}, "
          f"{len(problems)} difference(s)")
    sys.exit(1 if problems else 0)


main()
