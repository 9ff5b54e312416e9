#!/usr/bin/env python3
"""Compares two snapshots made by scripts/behaviour_snapshot.sh: for every
run directory in both, library.safetensors byte for byte, results.json field
for field, and every checkpoint's numeric datasets and attributes (h5diff,
Debian's hdf5-tools) except metrics.jsonl's history, whose lines hold
tokens/s. Exit 0 when everything is identical; 1 with one line per
difference.

    behaviour_compare.py SNAPSHOT_A SNAPSHOT_B
"""
import filecmp
import json
import os
import subprocess
import sys


def runs(root):
    out = set()
    for dirpath, _, files in os.walk(root):
        if "results.json" in files:
            out.add(os.path.relpath(dirpath, root))
    return out


def main():
    a, b = sys.argv[1], sys.argv[2]
    problems, checked = [], 0
    ra, rb = runs(a), runs(b)
    for missing in sorted(ra ^ rb):
        problems.append(f"{missing}: finished in only one snapshot")
    for run in sorted(ra & rb):
        da, db = os.path.join(a, run), os.path.join(b, run)
        if not filecmp.cmp(os.path.join(da, "library.safetensors"),
                           os.path.join(db, "library.safetensors"), shallow=False):
            problems.append(f"{run}: library.safetensors differs")
        with open(os.path.join(da, "results.json")) as f:
            ja = json.load(f)
        with open(os.path.join(db, "results.json")) as f:
            jb = json.load(f)
        if ja != jb:
            keys = sorted(k for k in set(ja) | set(jb) if ja.get(k) != jb.get(k))
            problems.append(f"{run}: results.json differs in {', '.join(keys)}")
        ca, cb = os.path.join(da, "checkpoints"), os.path.join(db, "checkpoints")
        fa = sorted(f for f in os.listdir(ca) if f.endswith(".h5"))
        fb = sorted(f for f in os.listdir(cb) if f.endswith(".h5"))
        if fa != fb:
            problems.append(f"{run}: checkpoint files differ: {fa} vs {fb}")
        for name in sorted(set(fa) & set(fb)):
            r = subprocess.run(["h5diff", "--exclude-path", "/metrics/history",
                                os.path.join(ca, name), os.path.join(cb, name)],
                               capture_output=True, text=True)
            if r.returncode != 0:
                problems.append(f"{run}/{name}: h5diff: {(r.stdout + r.stderr).strip()[:400]}")
        checked += 1
    for p in problems:
        print(p)
    print(f"{checked} runs compared, {len(problems)} differences")
    return 1 if problems or checked == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
