#!/usr/bin/python3
"""The cost model of docs/scaling.md: memory per rank with layer sharding,
bytes gathered and all-reduced per step, and the expected step time, for a
llama of any size on N ranks. `--check-json` compares its bytes against a
`sparc bench step --json` line measured here (same config, same ranks).

  /usr/bin/python3 tests/bench/cost_model.py            # the 7B / 70B tables
  /usr/bin/python3 tests/bench/cost_model.py --check-json LINE
  /usr/bin/python3 tests/bench/cost_model.py --memory-table   # docs/launching.md
"""
import argparse
import json

MODELS = {  # llama 2 shapes
    "d512": dict(dim=512, layers=8, heads=8, kv_heads=8, ffn=1376, vocab=512, tied=False),
    "7B": dict(dim=4096, layers=32, heads=32, kv_heads=32, ffn=11008, vocab=32000, tied=False),
    "70B": dict(dim=8192, layers=80, heads=64, kv_heads=8, ffn=28672, vocab=32000, tied=False),
}


def block_params(m):
    hd = m["dim"] // m["heads"]
    kv = m["kv_heads"] * hd
    return 2 * m["dim"] * m["dim"] + 2 * m["dim"] * kv + 3 * m["dim"] * m["ffn"] + 2 * m["dim"]


def vocab_params(m):  # the token embedding and the output layer (one table when tied)
    return m["vocab"] * m["dim"] * (1 if m["tied"] else 2)


VOCAB_SLICE_ROWS = 4096  # ModelOptions::vocab_slice_rows


def lookup_bytes(m, ids, ranks, wbytes):
    """Upper bound of the bytes a rank contributes to one sharded vocabulary
    lookup (model/vocab_shards.h) of `ids` ids per rank: its count, its ids,
    and the rows it owns of the distinct ids asked for (all distinct, spread
    evenly: at most min(V, ids x N) / N rows)."""
    rows = -(-min(m["vocab"], ids * ranks) // ranks)
    return 8 + 8 * ids + rows * m["dim"] * wbytes


def step_flops_per_token(m, seq):
    """Model FLOPs per token of the sparc step (src/model/flops.h): forward
    2 per weight, backward 2 per weight (input gradients only: frozen
    weights), attention 4 S hd per head forward and 8 backward."""
    hd = m["dim"] // m["heads"]
    lin = block_params(m) - 2 * m["dim"]
    attn = m["heads"] * 4 * seq * hd
    return m["layers"] * (4 * lin + 3 * attn)


def cost(m, ranks, seqs_per_rank, seq, wbytes=2, peak=990e12, mfu=0.4, bw_intra=300e9,
         bw_inter=45e9, per_node=8, trainable=2000, sharded=True, unit_size=4, prompt=20, classes=2,
         deterministic=True):
    L = m["layers"]
    blk = block_params(m) * wbytes
    n = ranks
    nodes = max(1, n // per_node)
    tokens = seqs_per_rank * seq
    out = {}
    held_blocks = L * blk / n if sharded else L * blk
    gathered = 2 * blk if sharded else 0  # the running block and the prefetched next one
    # Saved activations with layer sharding: each block keeps only its input.
    saved = L * tokens * m["dim"] * wbytes
    # The largest transient: one block's recomputation in backward, dominated by
    # the attention probabilities (f32) and the MLP's hidden activations.
    transient = seqs_per_rank * m["heads"] * seq * seq * 4 + 3 * tokens * m["ffn"] * wbytes
    # The embedding and output layer: 1/N of every slice's rows when sharded;
    # a pass over the vocabulary (perplexity's logits) adds two gathered slices.
    held_vocab = vocab_params(m) * wbytes / n if sharded and n > 1 else vocab_params(m) * wbytes
    if sharded and n > 1:
        gathered += 2 * min(VOCAB_SLICE_ROWS, m["vocab"]) * m["dim"] * wbytes
    out["vocab_gb"] = held_vocab / 1e9
    out["weights_gb"] = (held_blocks + held_vocab + m["dim"] * wbytes) / 1e9
    out["gather_buffers_gb"] = gathered / 1e9
    out["activations_gb"] = (saved + transient) / 1e9
    out["memory_per_rank_gb"] = out["weights_gb"] + out["gather_buffers_gb"] + out["activations_gb"]
    # Every block is gathered in forward and again in backward (recomputation).
    out["gather_bytes_per_step"] = 2 * L * blk * (n - 1) / n if sharded and n > 1 else 0
    # Each unit (rounds per rank) looks up its tokens' embeddings and its
    # classes' output rows: exchanges whose bytes follow the ids (bounds).
    if sharded and n > 1:
        rounds = -(-seqs_per_rank // unit_size)
        ids = unit_size * (seq - prompt)
        out["vocab_bytes_per_step"] = rounds * (lookup_bytes(m, ids, n, wbytes) +
                                                lookup_bytes(m, classes, n, wbytes))
        out["gather_bytes_per_step"] += out["vocab_bytes_per_step"]
    else:
        out["vocab_bytes_per_step"] = 0
    # train.deterministic (the default): int64 fixed point, 8 bytes a
    # parameter, plus one f64 MAX for the one trainable tensor of `sparc`;
    # otherwise a float32 all-reduce.
    out["allreduce_bytes_per_step"] = 8 * trainable + 8 if deterministic else 4 * trainable
    flops = step_flops_per_token(m, seq) * tokens
    if sharded and n > 1:
        flops += flops * 0.45  # backward re-runs each block's forward (about 45% of the step)
    out["compute_s"] = flops / (peak * mfu)
    bw = bw_inter if nodes > 1 else bw_intra
    out["gather_s"] = out["gather_bytes_per_step"] / bw
    # Gathers of block l+1 overlap block l's compute: the step takes the longer.
    out["step_s"] = max(out["compute_s"], out["gather_s"]) + 2 * blk / n / bw
    out["tokens_per_s_per_rank"] = tokens / out["step_s"]
    return out


def memory_table(seq):
    """Per-GPU memory with layer sharding, bf16 weights, at 1 and 4 sequences
    of `seq` tokens per rank; the trainable state (sparc: P x k = 2000 f32
    parameters, their gradient and two Adam moments) is 32 KB and left out."""
    print("| model | nodes x GPUs | weights/GPU GB | gather buffers GB | activations GB, 1 / 4 seqs "
          "| total GB, 1 / 4 seqs | fits 80 GB (4 seqs) |")
    print("|---|---|---|---|---|---|---|")
    for name in ["7B", "70B"]:
        for nodes in [1, 2, 4, 8]:
            one = cost(MODELS[name], nodes * 8, 1, seq)
            four = cost(MODELS[name], nodes * 8, 4, seq)
            print(f"| {name} | {nodes} x 8 | {four['weights_gb']:.2f} | {four['gather_buffers_gb']:.2f} | "
                  f"{one['activations_gb']:.1f} / {four['activations_gb']:.1f} | "
                  f"{one['memory_per_rank_gb']:.1f} / {four['memory_per_rank_gb']:.1f} | "
                  f"{'yes' if four['memory_per_rank_gb'] < 80 else 'no'} |")


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--check-json", help="a `sparc bench step --json` line of configs/bench-d512.yaml")
    p.add_argument("--seq", type=int, default=2048)
    p.add_argument("--seqs-per-rank", type=int, default=4)
    p.add_argument("--memory-table", action="store_true",
                   help="per-GPU memory of 7B and 70B on 1-8 nodes of 8 GPUs (docs/launching.md)")
    a = p.parse_args()
    if a.memory_table:
        memory_table(a.seq)
        return
    if a.check_json:
        r = json.loads(a.check_json)
        m = MODELS["d512"]
        wbytes = 2 if r["dtype"] == "bf16" else 4
        c = cost(m, r["world_size"], r["batch"] // r["world_size"], int(r["seq_len"]) + r["prompt_len"],
                 wbytes=wbytes, trainable=r["trainable_params"], sharded=r["sharding"] != "none",
                 prompt=r["prompt_len"])
        # Blocks: exact; the vocabulary lookups: a bound (they follow the distinct ids).
        print(json.dumps({"gather_bytes_per_step": [c["gather_bytes_per_step"], r["gather_bytes_per_step"]],
                          "of_which_vocabulary_lookups_at_most": c["vocab_bytes_per_step"],
                          "allreduce_bytes_per_step": [c["allreduce_bytes_per_step"],
                                                       r["grad_allreduce_bytes_per_step"]],
                          "model_flops_per_token": [step_flops_per_token(m, int(r["seq_len"]) + r["prompt_len"]),
                                                    r["model_flops_per_token"]]}))
        return
    print(f"| model | nodes x GPUs | weights/rank GB | gather buffers GB | activations GB | "
          f"total GB | gathered GB/step | all-reduced B/step | compute s | gather s | step s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name in ["7B", "70B"]:
        for nodes in [2, 4, 8]:
            c = cost(MODELS[name], nodes * 8, a.seqs_per_rank, a.seq)
            print(f"| {name} | {nodes} x 8 | {c['weights_gb']:.2f} | {c['gather_buffers_gb']:.2f} | "
                  f"{c['activations_gb']:.1f} | {c['memory_per_rank_gb']:.1f} | "
                  f"{c['gather_bytes_per_step'] / 1e9:.1f} | {c['allreduce_bytes_per_step']} | "
                  f"{c['compute_s']:.2f} | {c['gather_s']:.2f} | {c['step_s']:.2f} |")


if __name__ == "__main__":
    main()
