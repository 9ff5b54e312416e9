#!/usr/bin/env python3
"""Independent reference for Hugging Face model directories.

Builds tiny random models directly in Hugging Face tensor names and layouts,
writes them as model directories (config.json + safetensors written by hand,
single file or sharded index, f32 or bf16), and writes the logits this
script computes for fixed token ids with its own implementation: half-split
RoPE via rotate_half, explicit attention, RMSNorm/SwiGLU for llama, and
LayerNorm/GELU(tanh)/Conv1D for gpt2, all in float64 from the stored weights.

  hf_reference.py --out DIR             write the built-in cases under DIR
  hf_reference.py --eval MODEL_DIR      print logits of an existing llama
                  --tokens 1,2,3        directory as JSON on stdout

Needs PyTorch (Debian's python3-torch); nothing else beyond the standard library.
"""
import argparse
import json
import math
import os
import struct

import torch

F64 = torch.float64
DTYPES = {torch.float32: "F32", torch.bfloat16: "BF16", torch.float16: "F16"}
TOKENS = [1, 5, 9, 33, 2, 17, 40, 8, 61, 3]


def tensor_bytes(t):
    t = t.contiguous()
    if t.dtype in (torch.bfloat16, torch.float16):
        t = t.view(torch.int16)
    return t.numpy().tobytes()


def write_safetensors(path, tensors, dtype):
    header, blobs, offset = {}, [], 0
    for name, t in tensors.items():
        raw = tensor_bytes(t.to(dtype))
        header[name] = {"dtype": DTYPES[dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    body = data[8 + n:]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        chunk = bytearray(body[b:e])
        if info["dtype"] == "F32":
            t = torch.frombuffer(chunk, dtype=torch.float32)
        elif info["dtype"] == "BF16":
            t = torch.frombuffer(chunk, dtype=torch.int16).view(torch.bfloat16)
        elif info["dtype"] == "F16":
            t = torch.frombuffer(chunk, dtype=torch.int16).view(torch.float16)
        else:
            raise ValueError(info["dtype"])
        out[name] = t.reshape(info["shape"]).clone()
    return out


def write_model(directory, config, weights, dtype, shards=1):
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    if shards == 1:
        write_safetensors(os.path.join(directory, "model.safetensors"), weights, dtype)
        return
    names = list(weights)
    per = math.ceil(len(names) / shards)
    weight_map = {}
    for s in range(shards):
        fname = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
        part = {n: weights[n] for n in names[s * per:(s + 1) * per]}
        write_safetensors(os.path.join(directory, fname), part, dtype)
        weight_map.update({n: fname for n in part})
    with open(os.path.join(directory, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {}, "weight_map": weight_map}, f, indent=2)


# ---- reference forward passes (float64) --------------------------------------

def rms_norm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def causal_attention(q, k, v):
    # q/k/v: [..., H, T, hd]
    t = q.shape[-2]
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    mask = torch.triu(torch.ones(t, t, dtype=torch.bool), diagonal=1)
    scores = scores.masked_fill(mask, float("-inf"))
    return torch.softmax(scores, dim=-1) @ v


def llama_final_hidden(cfg, w, x):
    """Final-normed hidden states of input embeddings x ([..., T, D]), in x's dtype."""
    H = cfg["num_attention_heads"]
    KV = cfg.get("num_key_value_heads", H)
    hd = cfg.get("head_dim", cfg["hidden_size"] // H)
    eps = cfg["rms_norm_eps"]
    theta = cfg.get("rope_theta", 10000.0)
    T = x.shape[-2]
    inv_freq = 1.0 / theta ** (torch.arange(0, hd, 2, dtype=x.dtype) / hd)
    freqs = torch.outer(torch.arange(T, dtype=x.dtype), inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos(), emb.sin()

    def proj(h, name):
        y = h @ w[name + ".weight"].T
        if name + ".bias" in w:
            y = y + w[name + ".bias"]
        return y

    def heads(t, n):  # [..., T, n*hd] -> [..., n, T, hd]
        return t.view(*t.shape[:-1], n, hd).transpose(-3, -2)

    for layer in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{layer}."
        h = rms_norm(x, w[p + "input_layernorm.weight"], eps)
        q = heads(proj(h, p + "self_attn.q_proj"), H)
        k = heads(proj(h, p + "self_attn.k_proj"), KV)
        v = heads(proj(h, p + "self_attn.v_proj"), KV)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k = k.repeat_interleave(H // KV, dim=-3)
        v = v.repeat_interleave(H // KV, dim=-3)
        a = causal_attention(q, k, v).transpose(-3, -2).reshape(*x.shape[:-1], H * hd)
        x = x + proj(a, p + "self_attn.o_proj")
        h = rms_norm(x, w[p + "post_attention_layernorm.weight"], eps)
        gate = torch.nn.functional.silu(proj(h, p + "mlp.gate_proj"))
        x = x + proj(gate * proj(h, p + "mlp.up_proj"), p + "mlp.down_proj")
    return rms_norm(x, w["model.norm.weight"], eps)


def llama_logits(cfg, w, tokens):
    w = {n: t.to(F64) for n, t in w.items()}
    x = llama_final_hidden(cfg, w, w["model.embed_tokens.weight"][tokens])
    head = w.get("lm_head.weight", w["model.embed_tokens.weight"])
    return x @ head.T


def gpt2_logits(cfg, w, tokens):
    w = {n: t.to(F64) for n, t in w.items()}
    D, H, eps = cfg["n_embd"], cfg["n_head"], cfg["layer_norm_epsilon"]
    hd, T = D // H, len(tokens)
    x = w["wte.weight"][tokens] + w["wpe.weight"][:T]

    def ln(h, p):
        return torch.nn.functional.layer_norm(h, (D,), w[p + ".weight"], w[p + ".bias"], eps)

    def conv1d(h, p):  # Conv1D stores [in, out]
        return h @ w[p + ".weight"] + w[p + ".bias"]

    def gelu_tanh(u):
        return 0.5 * u * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (u + 0.044715 * u ** 3)))

    for layer in range(cfg["n_layer"]):
        p = f"h.{layer}."
        qkv = conv1d(ln(x, p + "ln_1"), p + "attn.c_attn")
        q, k, v = (t.view(T, H, hd).transpose(0, 1) for t in qkv.split(D, dim=-1))
        a = causal_attention(q, k, v).transpose(0, 1).reshape(T, D)
        x = x + conv1d(a, p + "attn.c_proj")
        x = x + conv1d(gelu_tanh(conv1d(ln(x, p + "ln_2"), p + "mlp.c_fc")), p + "mlp.c_proj")
    x = ln(x, "ln_f")
    return x @ w["wte.weight"].T


# ---- random models in Hugging Face names ----------------------------------------

def randn(gen, *shape, std=0.1):
    return torch.randn(*shape, generator=gen, dtype=torch.float32) * std


def llama_case(seed, gqa, bias, tie):
    gen = torch.Generator().manual_seed(seed)
    V, D, L, H, F = 64, 32, 2, 4, 48
    KV = 2 if gqa else H
    hd = D // H
    cfg = {"model_type": "qwen2" if bias else "llama", "hidden_size": D,
           "intermediate_size": F, "num_hidden_layers": L, "num_attention_heads": H,
           "num_key_value_heads": KV, "rms_norm_eps": 1e-6, "rope_theta": 500.0,
           "vocab_size": V, "max_position_embeddings": 128, "tie_word_embeddings": tie,
           "hidden_act": "silu"}
    w = {"model.embed_tokens.weight": randn(gen, V, D, std=1.0)}
    for l in range(L):
        p = f"model.layers.{l}."
        w[p + "input_layernorm.weight"] = 1 + randn(gen, D)
        w[p + "self_attn.q_proj.weight"] = randn(gen, H * hd, D, std=0.3)
        w[p + "self_attn.k_proj.weight"] = randn(gen, KV * hd, D, std=0.3)
        w[p + "self_attn.v_proj.weight"] = randn(gen, KV * hd, D, std=0.3)
        if bias:
            w[p + "self_attn.q_proj.bias"] = randn(gen, H * hd)
            w[p + "self_attn.k_proj.bias"] = randn(gen, KV * hd)
            w[p + "self_attn.v_proj.bias"] = randn(gen, KV * hd)
        w[p + "self_attn.o_proj.weight"] = randn(gen, D, H * hd, std=0.3)
        w[p + "post_attention_layernorm.weight"] = 1 + randn(gen, D)
        w[p + "mlp.gate_proj.weight"] = randn(gen, F, D, std=0.3)
        w[p + "mlp.up_proj.weight"] = randn(gen, F, D, std=0.3)
        w[p + "mlp.down_proj.weight"] = randn(gen, D, F, std=0.3)
    w["model.norm.weight"] = 1 + randn(gen, D)
    if not tie:
        w["lm_head.weight"] = randn(gen, V, D, std=0.3)
    return cfg, w


def gpt2_case(seed):
    gen = torch.Generator().manual_seed(seed)
    V, D, L, H, P = 64, 24, 2, 3, 32
    cfg = {"model_type": "gpt2", "n_embd": D, "n_layer": L, "n_head": H, "n_positions": P,
           "n_inner": None, "vocab_size": V, "layer_norm_epsilon": 1e-5,
           "activation_function": "gelu_new"}
    w = {"wte.weight": randn(gen, V, D, std=1.0), "wpe.weight": randn(gen, P, D, std=0.5)}
    for l in range(L):
        p = f"h.{l}."
        for n in ("ln_1", "ln_2"):
            w[p + n + ".weight"] = 1 + randn(gen, D)
            w[p + n + ".bias"] = randn(gen, D)
        w[p + "attn.c_attn.weight"] = randn(gen, D, 3 * D, std=0.3)
        w[p + "attn.c_attn.bias"] = randn(gen, 3 * D)
        w[p + "attn.c_proj.weight"] = randn(gen, D, D, std=0.3)
        w[p + "attn.c_proj.bias"] = randn(gen, D)
        w[p + "mlp.c_fc.weight"] = randn(gen, D, 4 * D, std=0.3)
        w[p + "mlp.c_fc.bias"] = randn(gen, 4 * D)
        w[p + "mlp.c_proj.weight"] = randn(gen, 4 * D, D, std=0.3)
        w[p + "mlp.c_proj.bias"] = randn(gen, D)
    w["ln_f.weight"] = 1 + randn(gen, D)
    w["ln_f.bias"] = randn(gen, D)
    return cfg, w


def write_case(out, name, cfg, w, forward, dtype=torch.float32, shards=1):
    directory = os.path.join(out, name)
    write_model(directory, cfg, w, dtype, shards)
    stored = {n: t.to(dtype) for n, t in w.items()}  # logits of the weights as stored
    logits = forward(cfg, stored, TOKENS)
    with open(os.path.join(directory, "reference.json"), "w") as f:
        json.dump({"tokens": TOKENS, "logits": logits.tolist()}, f)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out")
    ap.add_argument("--eval")
    ap.add_argument("--tokens")
    args = ap.parse_args()
    if args.eval:
        with open(os.path.join(args.eval, "config.json")) as f:
            cfg = json.load(f)
        w = read_safetensors(os.path.join(args.eval, "model.safetensors"))
        tokens = [int(t) for t in args.tokens.split(",")]
        print(json.dumps({"tokens": tokens, "logits": llama_logits(cfg, w, tokens).tolist()}))
        return
    write_case(args.out, "llama_gqa", *llama_case(1, gqa=True, bias=False, tie=False), llama_logits)
    write_case(args.out, "qwen2_bias_sharded", *llama_case(2, gqa=True, bias=True, tie=True),
               llama_logits, shards=3)
    write_case(args.out, "llama_bf16", *llama_case(3, gqa=False, bias=False, tie=False),
               llama_logits, dtype=torch.bfloat16)
    write_case(args.out, "gpt2", *gpt2_case(4), gpt2_logits)


if __name__ == "__main__":
    main()
