#!/usr/bin/env python3
"""Compares two sparc run directories: every field of results.json (timing
fields excluded) and every tensor and metadata entry of library.safetensors.
Numbers may differ by at most --tol (absolute; default 0: identical).

    compare_runs.py RUN_DIR_A RUN_DIR_B [--tol X]

Exit 0 when they match, 1 with one line per difference otherwise. Needs only
the Python standard library (safetensors is read by hand: an 8-byte header
length, a JSON header, raw little-endian data).
"""
import argparse
import json
import math
import re
import struct
import sys

TIMING = re.compile(r"(time|seconds|elapsed|wall|per_s$|_ms$|_s$)")
FORMATS = {"F64": "d", "F32": "f", "I64": "q", "I32": "i", "U8": "B", "I8": "b"}


def close(a, b, tol):
    if a == b:
        return True
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        if math.isnan(a) and math.isnan(b):
            return True
        return abs(a - b) <= tol
    return False


def diff(a, b, tol, path, out):
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if TIMING.search(k):
                continue
            if k not in a or k not in b:
                out.append(f"{path}{k}: only in {'B' if k not in a else 'A'}")
            else:
                diff(a[k], b[k], tol, f"{path}{k}.", out)
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            out.append(f"{path[:-1]}: length {len(a)} vs {len(b)}")
        for i, (x, y) in enumerate(zip(a, b)):
            diff(x, y, tol, f"{path}{i}.", out)
    elif not close(a, b, tol):
        out.append(f"{path[:-1]}: {a!r} vs {b!r}")


def read_safetensors(path):
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8 : 8 + n])
    meta = header.pop("__metadata__", {})
    data = blob[8 + n :]
    tensors = {}
    for name, t in header.items():
        fmt = FORMATS.get(t["dtype"])
        lo, hi = t["data_offsets"]
        raw = data[lo:hi]
        if fmt is None:  # compare other dtypes byte for byte
            tensors[name] = (t["dtype"], t["shape"], raw)
        else:
            count = len(raw) // struct.calcsize(fmt)
            tensors[name] = (t["dtype"], t["shape"], list(struct.unpack(f"<{count}{fmt}", raw)))
    return meta, tensors


def main():
    p = argparse.ArgumentParser()
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--tol", type=float, default=0.0)
    args = p.parse_args()
    out = []
    results = [json.load(open(f"{d}/results.json")) for d in (args.a, args.b)]
    diff(results[0], results[1], args.tol, "results.json:", out)
    (meta_a, ten_a), (meta_b, ten_b) = (read_safetensors(f"{d}/library.safetensors") for d in (args.a, args.b))
    for k in sorted(set(meta_a) | set(meta_b)):
        va, vb = meta_a.get(k), meta_b.get(k)
        try:  # metadata values are strings, often JSON
            va, vb = json.loads(va), json.loads(vb)
        except (TypeError, ValueError):
            pass
        diff(va, vb, args.tol, f"library metadata {k}:", out)
    for name in sorted(set(ten_a) | set(ten_b)):
        if name not in ten_a or name not in ten_b:
            out.append(f"library {name}: only in {'B' if name not in ten_a else 'A'}")
            continue
        (da, sa, xa), (db, sb, xb) = ten_a[name], ten_b[name]
        if (da, sa) != (db, sb):
            out.append(f"library {name}: {da}{sa} vs {db}{sb}")
        elif isinstance(xa, bytes):
            if xa != xb:
                out.append(f"library {name}: bytes differ")
        else:
            worst = max((abs(x - y) for x, y in zip(xa, xb)), default=0.0)
            if worst > args.tol and not all(close(x, y, args.tol) for x, y in zip(xa, xb)):
                out.append(f"library {name}: max abs difference {worst:g}")
    if out:
        print(f"runs differ ({args.a} vs {args.b}):")
        print("\n".join(f"  {line}" for line in out))
        return 1
    print(f"runs match: results.json and {len(ten_a)} library tensors (tolerance {args.tol:g})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
