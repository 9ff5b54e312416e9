#!/usr/bin/env python3
"""Independent float64 references of the newer Hugging Face families.

Writes tiny random-weight model directories with each family's real
config.json keys and Hugging Face tensor names, and the logits this script
computes for them (reference.json: tokens, an optional prefix of input
embeddings placed before them, logits at every position), following the
published architectures as transformers implements them:

  llama + rope_scaling llama3 / linear / dynamic (also the rope_parameters spelling)
  qwen3   per-head q/k RMSNorm before RoPE, head_dim of its own, sliding layers
  mistral sliding-window attention (a query sees the last `sliding_window` keys)
  phi3    fused qkv_proj and gate_up_proj, LongRoPE (short/long factors, attention factor)
  gemma2  sqrt(D) input scale (prompt rows too), (1 + w) RMSNorm, norms after attention
          and MLP, GeGLU, soft-capped scores and logits, alternating sliding layers
  gemma3  (text, and the multimodal checkpoints' language model) q/k norms, local RoPE base

  hf_families_reference.py --out DIR

Needs PyTorch (Debian's python3-torch). Shares only file writing with hf_reference.py.
"""
import argparse
import json
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hf_reference import TOKENS, randn, write_model  # noqa: E402

F64 = torch.float64


def rope_parameters(cfg):
    rs = cfg.get("rope_scaling") or cfg.get("rope_parameters") or {}
    base = rs.get("rope_theta", cfg.get("rope_theta", 10000.0))
    return rs, base, rs.get("rope_type", rs.get("type", "default"))


def inv_freq_and_scale(cfg, hd, seq_len):
    """transformers' modeling_rope_utils: inverse frequencies and the cos/sin factor."""
    rs, base, kind = rope_parameters(cfg)
    ar = torch.arange(0, hd, 2, dtype=F64) / hd
    inv = 1.0 / base ** ar
    if kind == "linear":
        return inv / rs["factor"], 1.0
    if kind == "dynamic":
        mpe = cfg["max_position_embeddings"]
        if seq_len > mpe:
            f = rs["factor"]
            base = base * ((f * seq_len / mpe) - (f - 1)) ** (hd / (hd - 2))
            inv = 1.0 / base ** ar
        return inv, 1.0
    if kind == "llama3":
        f, lo, hi = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"]
        old = rs["original_max_position_embeddings"]
        low_wavelen, high_wavelen = old / lo, old / hi
        wavelen = 2 * math.pi / inv
        inv_l = torch.where(wavelen > low_wavelen, inv / f, inv)
        smooth = (old / wavelen - lo) / (hi - lo)
        smoothed = (1 - smooth) * inv_l / f + smooth * inv_l
        medium = ~(wavelen < high_wavelen) * ~(wavelen > low_wavelen)
        return torch.where(medium, smoothed, inv_l), 1.0
    if kind in ("longrope", "su"):
        orig = cfg["original_max_position_embeddings"]
        factor = cfg["max_position_embeddings"] / orig
        scale = 1.0 if factor <= 1.0 else math.sqrt(1 + math.log(factor) / math.log(orig))
        ext = torch.tensor(rs["long_factor"] if seq_len > orig else rs["short_factor"], dtype=F64)
        return 1.0 / (ext * base ** ar), scale
    assert kind == "default", kind
    return inv, 1.0


def rms_norm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def sliding_layers(cfg):
    L, mt = cfg["num_hidden_layers"], cfg["model_type"]
    w = cfg.get("sliding_window")
    if mt in ("qwen2", "qwen3") and not cfg.get("use_sliding_window", False):
        w = None
    if w is None:
        return None, [False] * L
    if "layer_types" in cfg:
        return w, [t == "sliding_attention" for t in cfg["layer_types"]]
    if mt in ("qwen2", "qwen3"):
        return w, [l >= cfg["max_window_layers"] for l in range(L)]
    return w, [True] * L


def final_hidden(cfg, w, x):
    """Input embeddings x [T, D] -> final-normed hidden states, in float64."""
    H = cfg["num_attention_heads"]
    KV = cfg.get("num_key_value_heads", H)
    hd = cfg.get("head_dim") or cfg["hidden_size"] // H
    eps = cfg["rms_norm_eps"]
    T = x.shape[0]
    inv, scale = inv_freq_and_scale(cfg, hd, T)
    freqs = torch.outer(torch.arange(T, dtype=F64), inv)
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos() * scale, emb.sin() * scale
    window, slides = sliding_layers(cfg)
    i = torch.arange(T).unsqueeze(1)
    j = torch.arange(T).unsqueeze(0)
    causal = j <= i
    local = causal & (j > i - window) if window else causal
    phi3 = cfg["model_type"] == "phi3"
    for layer in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{layer}."
        h = rms_norm(x, w[p + "input_layernorm.weight"], eps)
        if phi3:
            qkv = h @ w[p + "self_attn.qkv_proj.weight"].T
            q, k, v = qkv.split([H * hd, KV * hd, KV * hd], dim=-1)
        else:
            q = h @ w[p + "self_attn.q_proj.weight"].T
            k = h @ w[p + "self_attn.k_proj.weight"].T
            v = h @ w[p + "self_attn.v_proj.weight"].T
        q, k, v = q.view(T, H, hd), k.view(T, KV, hd), v.view(T, KV, hd)
        if cfg["model_type"] == "qwen3":
            q = rms_norm(q, w[p + "self_attn.q_norm.weight"], eps)
            k = rms_norm(k, w[p + "self_attn.k_norm.weight"], eps)
        q, k, v = q.transpose(0, 1), k.transpose(0, 1), v.transpose(0, 1)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k = k.repeat_interleave(H // KV, dim=0)
        v = v.repeat_interleave(H // KV, dim=0)
        scores = q @ k.transpose(-1, -2) / math.sqrt(hd)
        allowed = local if slides[layer] else causal
        scores = scores.masked_fill(~allowed, float("-inf"))
        a = (torch.softmax(scores, -1) @ v).transpose(0, 1).reshape(T, H * hd)
        x = x + a @ w[p + "self_attn.o_proj.weight"].T
        h = rms_norm(x, w[p + "post_attention_layernorm.weight"], eps)
        if phi3:
            gate, up = (h @ w[p + "mlp.gate_up_proj.weight"].T).chunk(2, dim=-1)
        else:
            gate = h @ w[p + "mlp.gate_proj.weight"].T
            up = h @ w[p + "mlp.up_proj.weight"].T
        x = x + (torch.nn.functional.silu(gate) * up) @ w[p + "mlp.down_proj.weight"].T
    return rms_norm(x, w["model.norm.weight"], eps)


def logits(cfg, w, tokens, prefix):
    w = {n: t.to(F64) for n, t in w.items()}
    x = w["model.embed_tokens.weight"][tokens]
    if prefix is not None:
        x = torch.cat((prefix.to(F64), x), 0)
    head = w.get("lm_head.weight", w["model.embed_tokens.weight"])
    return final_hidden(cfg, w, x) @ head.T


# ---- Gemma 2 / Gemma 3 text --------------------------------------------------------

def gelu_tanh(u):
    return 0.5 * u * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (u + 0.044715 * u ** 3)))


def gemma_layer_types(tc):
    if "layer_types" in tc:
        return [t == "sliding_attention" for t in tc["layer_types"]]
    if tc["model_type"] == "gemma2":  # Gemma2Config: even layers slide
        return [(i + 1) % 2 == 1 for i in range(tc["num_hidden_layers"])]
    pattern = tc.get("sliding_window_pattern", 6)
    return [(i + 1) % pattern != 0 for i in range(tc["num_hidden_layers"])]


def gemma_logits(cfg, w, tokens, prefix):
    """Gemma2ForCausalLM / Gemma3ForCausalLM (and the multimodal language model)."""
    w = {n: t.to(F64) for n, t in w.items()}
    tc = cfg.get("text_config", cfg)
    pre = "language_model.model." if "text_config" in cfg else "model."
    gemma3 = tc["model_type"] == "gemma3_text"
    D, H, KV, hd = tc["hidden_size"], tc["num_attention_heads"], tc["num_key_value_heads"], tc["head_dim"]
    eps = tc["rms_norm_eps"]

    def norm(x, name):  # Gemma RMSNorm: times (1 + w)
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * (1.0 + w[pre + name])

    e = w[pre + "embed_tokens.weight"][tokens]
    if gemma3:  # Gemma3TextScaledWordEmbedding scales token embeddings only
        x = e * math.sqrt(D)
        if prefix is not None:
            x = torch.cat((prefix.to(F64), x), 0)
    else:  # Gemma2Model scales whatever inputs_embeds it is given
        x = e if prefix is None else torch.cat((prefix.to(F64), e), 0)
        x = x * math.sqrt(D)
    T = x.shape[0]
    slides = gemma_layer_types(tc)
    i = torch.arange(T).unsqueeze(1)
    j = torch.arange(T).unsqueeze(0)
    causal = j <= i
    local = causal & (j > i - tc["sliding_window"])

    def rope_tables(theta, factor):
        inv = 1.0 / theta ** (torch.arange(0, hd, 2, dtype=F64) / hd) / factor
        emb = torch.outer(torch.arange(T, dtype=F64), inv)
        emb = torch.cat((emb, emb), -1)
        return emb.cos(), emb.sin()

    rs = tc.get("rope_scaling") or {}
    global_rope = rope_tables(tc["rope_theta"], rs.get("factor", 1.0) if rs.get("rope_type", rs.get("type")) == "linear" else 1.0)
    local_rope = rope_tables(tc["rope_local_base_freq"], 1.0) if gemma3 else global_rope
    cap = tc.get("attn_logit_softcapping")
    for layer in range(tc["num_hidden_layers"]):
        p = f"layers.{layer}."
        h = norm(x, p + "input_layernorm.weight")
        q = (h @ w[pre + p + "self_attn.q_proj.weight"].T).view(T, H, hd)
        k = (h @ w[pre + p + "self_attn.k_proj.weight"].T).view(T, KV, hd)
        v = (h @ w[pre + p + "self_attn.v_proj.weight"].T).view(T, KV, hd)
        if gemma3:
            q = norm(q, p + "self_attn.q_norm.weight")
            k = norm(k, p + "self_attn.k_norm.weight")
        q, k, v = q.transpose(0, 1), k.transpose(0, 1), v.transpose(0, 1)
        cos, sin = local_rope if slides[layer] else global_rope
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k = k.repeat_interleave(H // KV, dim=0)
        v = v.repeat_interleave(H // KV, dim=0)
        scores = q @ k.transpose(-1, -2) * tc["query_pre_attn_scalar"] ** -0.5
        if cap:
            scores = torch.tanh(scores / cap) * cap
        scores = scores.masked_fill(~(local if slides[layer] else causal), float("-inf"))
        a = (torch.softmax(scores, -1) @ v).transpose(0, 1).reshape(T, H * hd)
        a = a @ w[pre + p + "self_attn.o_proj.weight"].T
        x = x + norm(a, p + "post_attention_layernorm.weight")
        h = norm(x, p + "pre_feedforward_layernorm.weight")
        m = gelu_tanh(h @ w[pre + p + "mlp.gate_proj.weight"].T) * (h @ w[pre + p + "mlp.up_proj.weight"].T)
        m = m @ w[pre + p + "mlp.down_proj.weight"].T
        x = x + norm(m, p + "post_feedforward_layernorm.weight")
    x = norm(x, "norm.weight")
    head = w.get("lm_head.weight", w.get("language_model.lm_head.weight", w[pre + "embed_tokens.weight"]))
    out = x @ head.T
    fcap = tc.get("final_logit_softcapping")
    return torch.tanh(out / fcap) * fcap if fcap else out


def make_gemma_case(seed, cfg):
    gen = torch.Generator().manual_seed(seed)
    tc = cfg.get("text_config", cfg)
    pre = "language_model.model." if "text_config" in cfg else "model."
    V, D, F = tc["vocab_size"], tc["hidden_size"], tc["intermediate_size"]
    H, KV, hd = tc["num_attention_heads"], tc["num_key_value_heads"], tc["head_dim"]
    w = {pre + "embed_tokens.weight": randn(gen, V, D, std=0.3)}
    for l in range(tc["num_hidden_layers"]):
        p = f"{pre}layers.{l}."
        for n in ("input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm",
                  "post_feedforward_layernorm"):
            w[p + n + ".weight"] = randn(gen, D, std=0.3)  # Gemma stores w of (1 + w)
        w[p + "self_attn.q_proj.weight"] = randn(gen, H * hd, D, std=0.3)
        w[p + "self_attn.k_proj.weight"] = randn(gen, KV * hd, D, std=0.3)
        w[p + "self_attn.v_proj.weight"] = randn(gen, KV * hd, D, std=0.3)
        if tc["model_type"] == "gemma3_text":
            w[p + "self_attn.q_norm.weight"] = randn(gen, hd, std=0.3)
            w[p + "self_attn.k_norm.weight"] = randn(gen, hd, std=0.3)
        w[p + "self_attn.o_proj.weight"] = randn(gen, D, H * hd, std=0.3)
        w[p + "mlp.gate_proj.weight"] = randn(gen, F, D, std=0.3)
        w[p + "mlp.up_proj.weight"] = randn(gen, F, D, std=0.3)
        w[p + "mlp.down_proj.weight"] = randn(gen, D, F, std=0.3)
    w[pre + "norm.weight"] = randn(gen, D, std=0.3)
    if "text_config" in cfg:  # the vision side, which sparc does not read
        w["vision_tower.vision_model.embeddings.patch_embedding.weight"] = randn(gen, 8, 3, 2, 2)
        w["multi_modal_projector.mm_input_projection_weight"] = randn(gen, 8, D)
    prefix = randn(gen, 3, D, std=1.0)
    return w, prefix


def gemma_cases():
    # Gemma-2-9B's keys, small: head_dim 16 (not 32 / 4), query_pre_attn_scalar
    # of its own, soft-capping low enough to bite, 3 layers (0 and 2 slide).
    gemma2 = {"architectures": ["Gemma2ForCausalLM"], "model_type": "gemma2", "hidden_size": 32,
              "intermediate_size": 48, "num_hidden_layers": 3, "num_attention_heads": 4,
              "num_key_value_heads": 2, "head_dim": 16, "rms_norm_eps": 1e-6, "rope_theta": 500.0,
              "vocab_size": 64, "max_position_embeddings": 128, "hidden_act": "gelu_pytorch_tanh",
              "hidden_activation": "gelu_pytorch_tanh", "query_pre_attn_scalar": 24,
              "sliding_window": 4, "attn_logit_softcapping": 2.0, "final_logit_softcapping": 3.0,
              "attention_bias": False, "attention_dropout": 0.0, "tie_word_embeddings": True,
              "torch_dtype": "float32"}
    # Gemma-3-4B's text keys, small: q/k norms, local base on sliding layers
    # (pattern 3: layers 0, 1 slide, 2 is global), linear scaling on global ones.
    gemma3 = {"architectures": ["Gemma3ForCausalLM"], "model_type": "gemma3_text", "hidden_size": 32,
              "intermediate_size": 48, "num_hidden_layers": 3, "num_attention_heads": 4,
              "num_key_value_heads": 2, "head_dim": 16, "rms_norm_eps": 1e-6, "rope_theta": 1000.0,
              "rope_local_base_freq": 50.0, "rope_scaling": {"rope_type": "linear", "factor": 2.0},
              "vocab_size": 64, "max_position_embeddings": 128,
              "hidden_activation": "gelu_pytorch_tanh", "query_pre_attn_scalar": 16,
              "sliding_window": 4, "sliding_window_pattern": 3, "attn_logit_softcapping": None,
              "final_logit_softcapping": None, "attention_bias": False, "tie_word_embeddings": True,
              "torch_dtype": "float32"}
    text = dict(gemma3, sliding_window_pattern=2)
    del text["architectures"]
    gemma3_mm = {"architectures": ["Gemma3ForConditionalGeneration"], "model_type": "gemma3",
                 "text_config": text, "vision_config": {"model_type": "siglip_vision_model"},
                 "mm_tokens_per_image": 256, "torch_dtype": "float32"}
    return [("gemma2", 21, gemma2, 10, True), ("gemma3_text", 22, gemma3, 10, True),
            ("gemma3_multimodal", 23, gemma3_mm, 10, False)]


def make_case(seed, cfg):
    """Random weights in Hugging Face names for a llama-like config."""
    gen = torch.Generator().manual_seed(seed)
    V, D, F = cfg["vocab_size"], cfg["hidden_size"], cfg["intermediate_size"]
    H = cfg["num_attention_heads"]
    KV = cfg.get("num_key_value_heads", H)
    hd = cfg.get("head_dim") or D // H
    w = {"model.embed_tokens.weight": randn(gen, V, D, std=1.0)}
    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}."
        w[p + "input_layernorm.weight"] = 1 + randn(gen, D)
        q, k, v = (randn(gen, n * hd, D, std=0.3) for n in (H, KV, KV))
        if cfg["model_type"] == "phi3":
            w[p + "self_attn.qkv_proj.weight"] = torch.cat((q, k, v), 0)
        else:
            w[p + "self_attn.q_proj.weight"] = q
            w[p + "self_attn.k_proj.weight"] = k
            w[p + "self_attn.v_proj.weight"] = v
        if cfg["model_type"] == "qwen3":
            w[p + "self_attn.q_norm.weight"] = 1 + randn(gen, hd, std=0.3)
            w[p + "self_attn.k_norm.weight"] = 1 + randn(gen, hd, std=0.3)
        w[p + "self_attn.o_proj.weight"] = randn(gen, D, H * hd, std=0.3)
        w[p + "post_attention_layernorm.weight"] = 1 + randn(gen, D)
        gate, up = randn(gen, F, D, std=0.3), randn(gen, F, D, std=0.3)
        if cfg["model_type"] == "phi3":
            w[p + "mlp.gate_up_proj.weight"] = torch.cat((gate, up), 0)
        else:
            w[p + "mlp.gate_proj.weight"] = gate
            w[p + "mlp.up_proj.weight"] = up
        w[p + "mlp.down_proj.weight"] = randn(gen, D, F, std=0.3)
    w["model.norm.weight"] = 1 + randn(gen, D)
    if not cfg.get("tie_word_embeddings", False):
        w["lm_head.weight"] = randn(gen, V, D, std=0.3)
    prefix = randn(gen, 3, D, std=1.0)
    return w, prefix


def base_config(model_type, **extra):
    cfg = {"architectures": [extra.pop("arch")], "model_type": model_type, "hidden_size": 32,
           "intermediate_size": 48, "num_hidden_layers": 2, "num_attention_heads": 4,
           "num_key_value_heads": 2, "rms_norm_eps": 1e-6, "rope_theta": 500.0,
           "vocab_size": 64, "max_position_embeddings": 128, "tie_word_embeddings": False,
           "hidden_act": "silu", "attention_dropout": 0.0, "torch_dtype": "float32"}
    cfg.update(extra)
    return cfg


def cases():
    """(name, seed, config, token count, with prefix)."""
    # Llama 3.1's rope_scaling with its published factors and a short
    # original length: head_dim 8, theta 500 give wavelengths 6.3, 30, 140,
    # 664, so the high, medium and low frequency rules all apply.
    llama3 = base_config("llama", arch="LlamaForCausalLM", attention_bias=False, mlp_bias=False,
                         rope_scaling={"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                       "original_max_position_embeddings": 64, "rope_type": "llama3"})
    linear = base_config("llama", arch="LlamaForCausalLM",
                         rope_scaling={"type": "linear", "factor": 2.5})
    # Transformers 5's spelling, theta inside; 13 positions beyond max_position_embeddings 8.
    dynamic = base_config("llama", arch="LlamaForCausalLM", max_position_embeddings=8,
                          rope_parameters={"rope_type": "dynamic", "factor": 2.0, "rope_theta": 300.0})
    del dynamic["rope_theta"]
    # Qwen3-8B's keys: head_dim of its own (12, not 32 / 4), tied here; the
    # window on layer 1 only (max_window_layers 1).
    qwen3 = base_config("qwen3", arch="Qwen3ForCausalLM", head_dim=12, attention_bias=False,
                        tie_word_embeddings=True, use_sliding_window=False, sliding_window=None,
                        max_window_layers=2)
    qwen3_sliding = dict(qwen3, use_sliding_window=True, sliding_window=5, max_window_layers=1)
    mistral = base_config("mistral", arch="MistralForCausalLM", sliding_window=4)
    # Phi-3-mini-128k's shape of keys: longrope factors per frequency,
    # original_max_position_embeddings beside max_position_embeddings.
    phi3 = base_config("phi3", arch="Phi3ForCausalLM", max_position_embeddings=32,
                       original_max_position_embeddings=8, sliding_window=31, attention_bias=False,
                       pad_token_id=0, embd_pdrop=0.0, resid_pdrop=0.0,
                       rope_scaling={"type": "longrope",
                                     "short_factor": [1.0, 1.1, 1.3, 1.7],
                                     "long_factor": [1.2, 2.0, 3.5, 6.0]})
    phi3_su = dict(phi3, rope_scaling=dict(phi3["rope_scaling"], type="su"))
    phi3_window = dict(phi3, sliding_window=5, rope_scaling=None)
    return [("llama3_rope", 11, llama3, 10, True),
            ("llama_linear_rope", 12, linear, 10, False),
            ("llama_dynamic_rope", 13, dynamic, 10, True),
            ("qwen3", 14, qwen3, 10, True),
            ("qwen3_sliding", 15, qwen3_sliding, 10, True),
            ("mistral_sliding", 16, mistral, 10, True),
            ("phi3_longrope_long", 17, phi3, 10, True),
            ("phi3_longrope_short", 17, phi3_su, 6, False),
            ("phi3_sliding", 18, phi3_window, 10, True)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    for name, seed, cfg, n, with_prefix in cases() + gemma_cases():
        gemma = "gemma" in cfg["model_type"]
        w, prefix = (make_gemma_case if gemma else make_case)(seed, cfg)
        directory = os.path.join(args.out, name)
        write_model(directory, cfg, w, torch.float32)
        tokens = TOKENS[:n]
        out = (gemma_logits if gemma else logits)(cfg, w, tokens, prefix if with_prefix else None)
        ref = {"tokens": tokens, "logits": out.tolist()}
        if with_prefix:
            ref["prefix"] = prefix.tolist()
        with open(os.path.join(directory, "reference.json"), "w") as f:
            json.dump(ref, f)


if __name__ == "__main__":
    main()
