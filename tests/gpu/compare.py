"""Comparisons for tests/gpu/run.sh (plain python3, no numpy or torch).

  compare.py logits REF.json GOT.json TOL         max |got - ref| <= TOL * max |ref|
  compare.py bf16 F32.json CPU_BF16.json DEV_BF16.json
      the device's bf16 logits are no further from f32 than 2x the CPU's bf16
      (plus 1e-3 of the scale): a different but equally good rounding
  compare.py runs REF_RUN_DIR GOT_RUN_DIR ACC_TOL REL_TOL
      results.json (accuracy matrix, zero-shot, perplexity, reuse decisions)
      and every library.safetensors tensor of two sparc train runs
  compare.py peft PEFT.json SPARC.json TOL        logits of peft vs sparc, same as `logits`
Prints one JSON line of the measured differences; exits 1 when a bound fails."""
import json
import struct
import sys


def load_logits(path):
    with open(path) as f:
        j = json.loads(f.readline())
    return j["shape"], j["logits"]


def max_diff(a, b):
    return max(abs(x - y) for x, y in zip(a, b))


def argmax_rows(values, width):
    return [max(range(width), key=lambda i: values[r * width + i]) for r in range(len(values) // width)]


def logits(ref_path, got_path, tol):
    rs, ref = load_logits(ref_path)
    gs, got = load_logits(got_path)
    if rs != gs:
        return {"error": f"shape {gs} != {rs}"}, False
    scale = max(abs(x) for x in ref)
    diff = max_diff(ref, got)
    same_argmax = argmax_rows(ref, rs[-1]) == argmax_rows(got, rs[-1])
    return {"max_abs_diff": diff, "scale": scale, "rel": diff / scale, "tol": tol,
            "same_argmax": same_argmax}, diff <= tol * scale


def bf16(f32_path, cpu_path, dev_path):
    _, f32 = load_logits(f32_path)
    _, cpu = load_logits(cpu_path)
    _, dev = load_logits(dev_path)
    scale = max(abs(x) for x in f32)
    e_cpu, e_dev = max_diff(f32, cpu), max_diff(f32, dev)
    bound = 2 * e_cpu + 1e-3 * scale
    return {"cpu_bf16_err": e_cpu, "dev_bf16_err": e_dev, "bound": bound, "scale": scale}, e_dev <= bound


def safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        raw = data[begin:end]
        if info["dtype"] == "F32":
            out[name] = list(struct.unpack(f"<{len(raw) // 4}f", raw))
        elif info["dtype"] == "F64":
            out[name] = list(struct.unpack(f"<{len(raw) // 8}d", raw))
        elif info["dtype"] == "I64":
            out[name] = list(struct.unpack(f"<{len(raw) // 8}q", raw))
        else:
            out[name] = list(raw)
    return out


def runs(ref_dir, got_dir, acc_tol, rel_tol):
    ref = json.load(open(f"{ref_dir}/results.json"))
    got = json.load(open(f"{got_dir}/results.json"))
    report, ok = {}, True
    acc = max(abs(a - b) for ra, rb in zip(ref["accuracy_matrix"], got["accuracy_matrix"])
              for a, b in zip(ra, rb))
    zero = max(abs(a - b) for a, b in zip(ref["zero_shot"], got["zero_shot"]))
    report["accuracy_max_diff"], report["zero_shot_max_diff"] = acc, zero
    ok &= acc <= acc_tol and zero <= acc_tol
    for key in ["ppl_before", "ppl_after"]:
        if ref.get(key) is not None:
            rel = abs(ref[key] - got[key]) / abs(ref[key])
            report[key + "_rel"] = rel
            ok &= rel <= rel_tol
    same_reuse = [r["reused_from"] for r in ref["reuse"]] == [r["reused_from"] for r in got["reuse"]]
    report["same_reuse"] = same_reuse
    ok &= same_reuse and ref["tasks"] == got["tasks"]
    lib_ref = safetensors(f"{ref_dir}/library.safetensors")
    lib_got = safetensors(f"{got_dir}/library.safetensors")
    ok &= sorted(lib_ref) == sorted(lib_got)
    worst = 0.0
    for name, values in lib_ref.items():
        other = lib_got.get(name, [])
        if len(other) != len(values):
            ok = False
            continue
        scale = max([abs(v) for v in values] + [1e-12])
        worst = max(worst, max_diff(values, other) / scale if values else 0.0)
    report["library_tensors"], report["library_max_rel_diff"] = len(lib_ref), worst
    ok &= worst <= rel_tol
    report["acc_tol"], report["rel_tol"] = acc_tol, rel_tol
    return report, ok


def main():
    kind, args = sys.argv[1], sys.argv[2:]
    if kind in ("logits", "peft"):
        report, ok = logits(args[0], args[1], float(args[2]))
    elif kind == "bf16":
        report, ok = bf16(*args)
    elif kind == "runs":
        report, ok = runs(args[0], args[1], float(args[2]), float(args[3]))
    else:
        sys.exit(f"compare.py: unknown comparison {kind}")
    report["check"], report["ok"] = kind, bool(ok)
    print(json.dumps(report))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
