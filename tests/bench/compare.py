#!/usr/bin/python3
"""Runs `sparc bench step` and the two PyTorch peers of reference_step.py (the
Hugging Face-style one, norms and softmax in f32, and the lean one, both kept
in the model dtype) in alternation in one session and prints per-run and
median ratios (docs/benchmarks.md).

  /usr/bin/python3 tests/bench/compare.py [--sparc build/sparc] [--repeats 3] [--steps 3]
      [--dtypes f32,bf16] [--scaling] [--pca] [--gemm] [--json FILE]

Every figure is the median of --repeats runs; ours and the reference
alternate run by run, so machine load drifts hit both alike. The target
configuration is configs/bench-d512.yaml (its random model is written to
build/bench-d512 first when absent). --scaling adds 1 rank x 1 thread,
1 rank x 2 threads and 2 ranks x 1 thread (mpirun); --threads-by-width 1 vs 2
threads by model width; --pca adds bench pca;
--gemm adds bench gemm's peaks. One JSON summary line is printed at the end
(and written to --json).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
p.add_argument("--sparc", default=os.path.join(ROOT, "build", "sparc"))
p.add_argument("--config", default=os.path.join(ROOT, "configs", "bench-d512.yaml"))
p.add_argument("--model", default=os.path.join(ROOT, "build", "bench-d512"))
p.add_argument("--repeats", type=int, default=3)
p.add_argument("--steps", type=int, default=3)
p.add_argument("--threads", type=int, default=2, help="threads of the one-rank comparison")
p.add_argument("--dtypes", default="f32,bf16")
p.add_argument("--set", action="append", default=[], help="extra --set for sparc (sweeps)")
p.add_argument("--ref-args", default="", help="extra reference arguments (sweeps)")
p.add_argument("--no-compare", action="store_true", help="skip ours-vs-reference")
p.add_argument("--scaling", action="store_true")
p.add_argument("--pca", action="store_true")
p.add_argument("--gemm", action="store_true")
p.add_argument("--sweep", action="store_true",
               help="cost vs sequence length and model size: ours and the reference, "
                    "alternating, 1 thread, --repeats runs each")
p.add_argument("--threads-by-width", action="store_true",
               help="1 vs 2 threads on one rank for models of width 64-512 (4 layers, pca.k 32, the "
                    "config's sequences): where the default thread count drops to one")
p.add_argument("--json", help="also write the summary here")
a = p.parse_args()


def env_threads(n):
    e = dict(os.environ)
    e.update(OMP_NUM_THREADS=str(n), OPENBLAS_NUM_THREADS=str(n),
             OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    return e


def run_json(cmd, threads):
    out = subprocess.run(cmd, env=env_threads(threads), capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"failed ({out.returncode}): {' '.join(cmd)}\n{out.stderr[-3000:]}")
    return json.loads([l for l in out.stdout.splitlines() if l.startswith("{")][-1])


def ours(dtype, threads=None, ranks=1, extra=()):
    threads = threads or a.threads
    cmd = [a.sparc, "--log-level", "warn", "--threads", str(threads), "bench", "step",
           "--config", a.config, "--set", f"model.path={a.model}",
           "--set", f"model.dtype={dtype}", "--steps", str(a.steps), "--json"]
    for s in list(a.set) + list(extra):
        cmd += ["--set", s]
    if ranks > 1:
        cmd = ["mpirun", "-np", str(ranks), "--oversubscribe", "--bind-to", "none",
               "-x", "OMP_NUM_THREADS", "-x", "OPENBLAS_NUM_THREADS"] + cmd
    return run_json(cmd, threads)


def reference(dtype, threads=None, style="hf"):
    threads = threads or a.threads
    cmd = ["/usr/bin/python3", os.path.join(ROOT, "tests", "bench", "reference_step.py"),
           "--dtype", dtype, "--steps", str(a.steps), "--threads", str(threads),
           "--style", style] + a.ref_args.split()
    return run_json(cmd, threads)


def load():
    return os.getloadavg()[0]


def med(runs, key):
    return statistics.median(r[key] for r in runs)


if not os.path.exists(os.path.join(a.model, "config.json")):
    subprocess.run([a.sparc, "random-model", "--out", a.model, "--dim", "512", "--layers", "8",
                    "--heads", "8", "--ffn", "1376", "--vocab", "512"], check=True)

summary = {"loadavg_start": os.getloadavg(), "repeats": a.repeats, "steps": a.steps,
           "threads": a.threads, "nproc": os.cpu_count()}
if a.gemm:
    summary["gemm"] = {}
    for dt in ["f32", "bf16", "f64"]:
        for th in sorted({1, a.threads}):
            r = run_json([a.sparc, "--threads", str(th), "bench", "gemm", "--dtype", dt, "--json"], th)
            summary["gemm"][f"{dt}_{th}t"] = r["gflops_per_rank"]
            print(f"gemm {dt} {th} thread(s): {r['gflops_per_rank']:.1f} GFLOP/s (load {load():.2f})")

if not a.no_compare:
    summary["compare"] = {}
    print(f"{'dtype':6} {'run':>3} {'ours tok/s':>11} {'hf tok/s':>9} {'lean tok/s':>11} "
          f"{'/hf':>5} {'/lean':>6} {'mfu':>6} {'load':>5}")
    for dt in a.dtypes.split(","):
        o_runs, r_runs, l_runs = [], [], []
        for i in range(a.repeats):
            o = ours(dt)
            r = reference(dt)
            l = reference(dt, style="lean")
            o_runs.append(o)
            r_runs.append(r)
            l_runs.append(l)
            print(f"{dt:6} {i:3d} {o['tokens_per_s']:11.1f} {r['tokens_per_s']:9.1f} "
                  f"{l['tokens_per_s']:11.1f} {o['tokens_per_s'] / r['tokens_per_s']:5.2f} "
                  f"{o['tokens_per_s'] / l['tokens_per_s']:6.2f} {o['mfu']:6.3f} {load():5.2f}",
                  flush=True)
        flops = o_runs[0]["model_flops_per_token"]
        peak = med(o_runs, "gemm_peak_gflops")
        row = {"ours_tokens_per_s": med(o_runs, "tokens_per_s"),
               "ref_tokens_per_s": med(r_runs, "tokens_per_s"),
               "lean_tokens_per_s": med(l_runs, "tokens_per_s"),
               "ours_ms_per_step": med(o_runs, "ms_per_step"),
               "ref_ms_per_step": med(r_runs, "ms_per_step"),
               "lean_ms_per_step": med(l_runs, "ms_per_step"),
               "mfu": med(o_runs, "mfu"), "gemm_peak_gflops": peak,
               "model_flops_per_token": flops,
               "ref_mfu": med(r_runs, "tokens_per_s") * flops / 1e9 / peak,
               "lean_mfu": med(l_runs, "tokens_per_s") * flops / 1e9 / peak,
               "per_run_ratio": [o["tokens_per_s"] / r["tokens_per_s"] for o, r in zip(o_runs, r_runs)],
               "per_run_lean_ratio": [o["tokens_per_s"] / l["tokens_per_s"] for o, l in zip(o_runs, l_runs)],
               "per_run_mfu": [o["mfu"] for o in o_runs],
               "seq_len": o_runs[0]["seq_len"], "batch": o_runs[0]["batch"],
               "peak_rss_mb": med(o_runs, "peak_rss_mb")}
        row["ratio"] = row["ours_tokens_per_s"] / row["ref_tokens_per_s"]
        row["lean_ratio"] = row["ours_tokens_per_s"] / row["lean_tokens_per_s"]
        summary["compare"][dt] = row
        print(f"{dt}: ours {row['ours_tokens_per_s']:.1f} tok/s, HF-style reference "
              f"{row['ref_tokens_per_s']:.1f} (ratio {row['ratio']:.3f}), lean reference "
              f"{row['lean_tokens_per_s']:.1f} (ratio {row['lean_ratio']:.3f}); MFU ours "
              f"{row['mfu']:.3f}, HF-style {row['ref_mfu']:.3f}, lean {row['lean_mfu']:.3f} (peak "
              f"{peak:.1f} GFLOP/s)", flush=True)

if a.scaling:
    summary["scaling"] = {}
    dt = a.dtypes.split(",")[0]
    runs = {"1x1": [], "1x2": [], "2x1": []}
    for i in range(a.repeats):
        runs["1x1"].append(ours(dt, threads=1))
        runs["1x2"].append(ours(dt, threads=2))
        runs["2x1"].append(ours(dt, threads=1, ranks=2))
        print(f"scaling {dt} run {i}: " + ", ".join(
            f"{k} {v[-1]['tokens_per_s']:.1f} tok/s" for k, v in runs.items()) +
            f" (load {load():.2f})", flush=True)
    base = med(runs["1x1"], "tokens_per_s")
    for k, v in runs.items():
        summary["scaling"][k] = {"tokens_per_s": med(v, "tokens_per_s"),
                                 "speedup": med(v, "tokens_per_s") / base,
                                 "mfu": med(v, "mfu")}
    print("scaling (ranks x threads): " + ", ".join(
        f"{k}: {s['tokens_per_s']:.1f} tok/s = {s['speedup']:.2f}x" for k, s in
        summary["scaling"].items()))

if a.pca:
    summary["pca"] = {}
    for dt in ["f32", "f64"]:
        r = run_json([a.sparc, "--threads", str(a.threads), "bench", "pca", "--dim", "512",
                      "--samples", "65536", "--k", "100", "--dtype", dt, "--json"], a.threads)
        summary["pca"][dt] = r
        print(f"pca {dt}: accumulate {r['accumulate_gflops']:.1f} GFLOP/s = "
              f"{100 * r['fraction_of_peak']:.0f}% of gemm {r['gemm_peak_gflops']:.1f}; "
              f"top-100 solve {r['solve_ms']:.1f} ms")

if a.sweep:
    summary["sweep"] = []
    dt = a.dtypes.split(",")[0]
    sizes = {256: (4, 688), 512: (8, 1376), 768: (12, 2048)}  # D: heads, ffn (8 layers)
    cases = [(512, seq) for seq in (64, 128, 256)] + [(d, 256) for d in (256, 768)]
    for dim, seq in cases:
        heads, ffn = sizes[dim]
        path = os.path.join(os.path.dirname(a.model), f"bench-d{dim}")
        if not os.path.exists(os.path.join(path, "config.json")):
            subprocess.run([a.sparc, "random-model", "--out", path, "--dim", str(dim), "--layers",
                            "8", "--heads", str(heads), "--ffn", str(ffn), "--vocab", "512"],
                           check=True, capture_output=True)
        o_runs, r_runs = [], []
        for i in range(a.repeats):
            o_runs.append(ours(dt, threads=1, extra=[f"model.path={path}", f"train.max_length={seq}"]))
            r = subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "tests", "bench", "reference_step.py"),
                                "--dtype", dt, "--steps", str(a.steps), "--threads", "1", "--dim", str(dim),
                                "--heads", str(heads), "--ffn", str(ffn), "--seq", str(seq)],
                               env=env_threads(1), capture_output=True, text=True, check=True)
            r_runs.append(json.loads(r.stdout.strip().splitlines()[-1]))
        row = {"dim": dim, "seq_len": o_runs[0]["seq_len"], "dtype": dt,
               "ours_tokens_per_s": med(o_runs, "tokens_per_s"),
               "ours_ms_per_step": med(o_runs, "ms_per_step"),
               "ref_tokens_per_s": med(r_runs, "tokens_per_s"),
               "model_flops_per_token": o_runs[0]["model_flops_per_token"],
               "mfu": med(o_runs, "mfu"), "peak_rss_mb": med(o_runs, "peak_rss_mb")}
        row["ratio"] = row["ours_tokens_per_s"] / row["ref_tokens_per_s"]
        summary["sweep"].append(row)
        print(f"sweep D={dim} seq={row['seq_len']:.0f}: ours {row['ours_tokens_per_s']:.1f} tok/s "
              f"({row['ours_ms_per_step']:.0f} ms/step, {row['model_flops_per_token'] / 1e6:.1f} "
              f"MFLOP/token, MFU {row['mfu']:.2f}), reference {row['ref_tokens_per_s']:.1f}, ratio "
              f"{row['ratio']:.2f} (load {load():.2f})", flush=True)

if a.threads_by_width:
    summary["threads_by_width"] = []
    dt = a.dtypes.split(",")[0]
    for dim in (64, 128, 192, 256, 384, 512):
        path = os.path.join(os.path.dirname(a.model), f"threads-d{dim}")
        if not os.path.exists(os.path.join(path, "config.json")):
            subprocess.run([a.sparc, "random-model", "--out", path, "--dim", str(dim), "--layers",
                            "4", "--heads", str(max(1, dim // 64)), "--ffn", str(dim * 8 // 3),
                            "--vocab", "512"], check=True, capture_output=True)
        one, two = [], []
        for i in range(a.repeats):
            one.append(ours(dt, threads=1, extra=[f"model.path={path}", "pca.k=32"]))
            two.append(ours(dt, threads=2, extra=[f"model.path={path}", "pca.k=32"]))
        row = {"dim": dim, "dtype": dt, "tokens_per_s_1t": med(one, "tokens_per_s"),
               "tokens_per_s_2t": med(two, "tokens_per_s"),
               "per_run_speedup": [b["tokens_per_s"] / o["tokens_per_s"] for o, b in zip(one, two)]}
        row["speedup"] = row["tokens_per_s_2t"] / row["tokens_per_s_1t"]
        summary["threads_by_width"].append(row)
        print(f"width {dim}: 1 thread {row['tokens_per_s_1t']:.0f} tok/s, 2 threads "
              f"{row['tokens_per_s_2t']:.0f} tok/s: {row['speedup']:.2f}x (runs: " +
              ", ".join(f"{x:.2f}" for x in row["per_run_speedup"]) + f"; load {load():.2f})",
              flush=True)

summary["loadavg_end"] = os.getloadavg()
line = json.dumps(summary)
print(line)
if a.json:
    with open(a.json, "w") as f:
        f.write(line + "\n")
