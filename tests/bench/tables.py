#!/usr/bin/python3
"""Markdown tables for docs/benchmarks.md from compare.py's JSON summary lines.

  /usr/bin/python3 tests/bench/tables.py SUMMARY.json [MORE.json ...]
"""
import json
import sys

TARGET_RATIO = {"f32": 1.15, "bf16": 1.3}
TARGET_MFU = {"f32": 0.45, "bf16": 0.40}


def ok(flag):
    return "met" if flag else "**not met**"


for path in sys.argv[1:]:
    s = json.loads(open(path).read().strip().splitlines()[-1])
    la, lb = s["loadavg_start"], s["loadavg_end"]
    print(f"\n_{path}: medians of {s['repeats']} runs of {s['steps']} timed steps; "
          f"load average {la[0]:.2f} at the start, {lb[0]:.2f} at the end (2 cores, shared)._\n")
    if "gemm" in s:
        print("| bench gemm 2048^3 | GFLOP/s per rank |\n|---|---|")
        for k, v in s["gemm"].items():
            dt, th = k.split("_")
            print(f"| {dt}, {th.rstrip('t')} thread(s) | {v:.1f} |")
        print()
    if "compare" in s:
        print(f"| dtype | ours tok/s | PyTorch tok/s | ratio (target) | ours ms/step | PyTorch ms/step "
              f"| model MFLOP/token | gemm peak GFLOP/s | MFU ours (target) | MFU PyTorch |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for dt, r in s["compare"].items():
            print(f"| {dt} | {r['ours_tokens_per_s']:.1f} | {r['ref_tokens_per_s']:.1f} | "
                  f"{r['ratio']:.3f} (>= {TARGET_RATIO.get(dt, 0)}: {ok(r['ratio'] >= TARGET_RATIO.get(dt, 0))}) | "
                  f"{r['ours_ms_per_step']:.0f} | {r['ref_ms_per_step']:.0f} | "
                  f"{r['model_flops_per_token'] / 1e6:.1f} | {r['gemm_peak_gflops']:.1f} | "
                  f"{r['mfu']:.2f} (>= {TARGET_MFU.get(dt, 0)}: {ok(r['mfu'] >= TARGET_MFU.get(dt, 0))}) | "
                  f"{r['ref_mfu']:.2f} |")
        print()
    if "scaling" in s:
        print("| ranks x threads | tokens/s | vs 1 x 1 | MFU |\n|---|---|---|---|")
        for k, r in s["scaling"].items():
            note = f" (target >= 1.7: {ok(r['speedup'] >= 1.7)})" if k == "2x1" else ""
            print(f"| {k.replace('x', ' x ')} | {r['tokens_per_s']:.1f} | {r['speedup']:.2f}x{note} | "
                  f"{r['mfu']:.2f} |")
        print()
    if "pca" in s:
        print("| bench pca D=512 N=65536 k=100 | accumulate ms | GFLOP/s | gemm peak (its products' dtype) "
              "| fraction (target >= 0.70) | top-k solve ms |\n|---|---|---|---|---|---|")
        for dt, r in s["pca"].items():
            print(f"| {dt} rows, {r['product_dtype']} products | {r['accumulate_ms']:.1f} | "
                  f"{r['accumulate_gflops']:.1f} | {r['gemm_peak_gflops']:.1f} | "
                  f"{r['fraction_of_peak']:.2f} ({ok(r['fraction_of_peak'] >= 0.7)}) | {r['solve_ms']:.1f} |")
        print()
    if "sweep" in s:
        print("| D | tokens/seq | model MFLOP/token | ours ms/step | ours tok/s | PyTorch tok/s | ratio | MFU |"
              "\n|---|---|---|---|---|---|---|---|")
        for r in s["sweep"]:
            print(f"| {r['dim']} | {r['seq_len']:.0f} | {r['model_flops_per_token'] / 1e6:.1f} | "
                  f"{r['ours_ms_per_step']:.0f} | {r['ours_tokens_per_s']:.1f} | {r['ref_tokens_per_s']:.1f} | "
                  f"{r['ratio']:.2f} | {r['mfu']:.2f} |")
        print()
