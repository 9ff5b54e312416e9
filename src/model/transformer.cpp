// Transformer's forward pass: positions and masks, the blocks and the final
// norm (the embedding and the output layer: transformer_vocab.cpp).
#include "model/transformer.h"

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "core/error.h"
#include "model/transformer_internal.h"

namespace sparc {

using model_detail::compute_type;

torch::Dtype parse_model_dtype(const std::string& name, const std::string& where) {
  if (name == "f32" || name == "float32") return torch::kFloat32;
  if (name == "bf16" || name == "bfloat16") return torch::kBFloat16;
  if (name == "f16" || name == "float16") return torch::kFloat16;
  throw InputError(where, "unknown dtype '" + name + "', expected f32, bf16 or f16");
}

torch::Device parse_model_device(const std::string& name, const std::string& where) {
  if (name == "cpu") return torch::kCPU;
  if (name.rfind("cuda", 0) == 0) {
    if (!torch::cuda::is_available())
      throw InputError(where, "device '" + name + "' requested but CUDA is not available " +
                                  "in this build or on this machine");
    return torch::Device(name);
  }
  throw InputError(where, "unknown device '" + name + "', expected cpu, cuda or cuda:N");
}

torch::Tensor Transformer::norm(const Norm& n, const torch::Tensor& x) const {
  if (config_.arch == Arch::kGpt2)
    return torch::layer_norm(x, {config_.dim}, n.weight, n.bias, config_.norm_eps);
  // RMSNorm in at least float32, then back to the activation dtype (as Hugging Face does).
  if (!n.weight.requires_grad()) return model_detail::rms_norm(x, n.weight, config_.norm_eps);
  auto xf = x.to(compute_type(x));
  auto y = xf * torch::rsqrt(xf.pow(2).mean(-1, true) + config_.norm_eps);
  return y.to(x.scalar_type()) * n.weight;
}

torch::Tensor Transformer::run_block(const Block& b, const torch::Tensor& x, const Geometry& g,
                                     const DropoutKeys* dropout, const torch::Tensor& rows) const {
  const std::int64_t B = x.size(0), S = x.size(1);
  const std::int64_t H = config_.n_heads, KV = config_.n_kv_heads, hd = config_.head_dim;
  // With `rows`, only one query position per sequence goes on past the keys
  // and values: the rest of the block's work is not needed.
  const bool sel = rows.defined();
  const std::int64_t Sq = sel ? 1 : S;
  torch::Tensor at;  // [B, 1, 1, 1] positions, for gathering along dim 2
  if (sel) at = rows.view({B, 1, 1, 1});
  auto pick = [&](const torch::Tensor& t) {  // [B, S, D] -> [B, 1, D] at `rows`
    return t.gather(1, rows.view({B, 1, 1}).expand({B, 1, t.size(2)}));
  };
  auto h = norm(b.attn_norm, x);
  auto q = b.q.forward(sel ? pick(h) : h, dropout).view({B, Sq, H, hd});
  auto k = b.k.forward(h, dropout).view({B, S, KV, hd});
  if (b.q_norm.weight.defined()) {  // Qwen3: RMSNorm over each head, before RoPE
    q = norm(b.q_norm, q);
    k = norm(b.k_norm, k);
  }
  q = q.transpose(1, 2);
  k = k.transpose(1, 2);
  auto v = b.v.forward(h, dropout).view({B, S, KV, hd}).transpose(1, 2);
  progress_gather();
  // Llama: the attention scale 1/sqrt(hd) is folded into the queries' RoPE
  // factors (a pass over q instead of one over the [S, S] scores).
  double scale = 1.0 / std::sqrt(double(hd));
  if (config_.arch == Arch::kLlama) {
    const bool local = b.sliding && g.cos_local.defined();  // Gemma 3's local RoPE base
    const auto& qc = local ? g.q_cos_local : g.q_cos;
    const auto& qs = local ? g.q_sin_local : g.q_sin;
    q = sel ? model_detail::rope(q, qc.gather(2, at.expand({B, 1, 1, hd})),
                                 qs.gather(2, at.expand({B, 1, 1, hd})))
            : model_detail::rope(q, qc, qs);
    k = local ? model_detail::rope(k, g.cos_local, g.sin_local) : model_detail::rope(k, g.cos, g.sin);
    scale = 1.0;
  }
  // Grouped-query attention (KV < H): attention() lets query head i read
  // key/value head i / (H / KV).
  const auto& mask = b.sliding ? g.blocked_local : g.blocked;
  const auto blocked = sel ? mask.gather(2, at.expand({B, 1, 1, S})) : mask;
  auto attn = model_detail::attention(q, k, v, blocked, scale, config_.attn_softcap)
                  .transpose(1, 2)
                  .reshape({B, Sq, H * hd});
  progress_gather();
  auto attn_out = b.o.forward(attn, dropout);
  if (b.post_attn_norm.weight.defined()) attn_out = norm(b.post_attn_norm, attn_out);
  auto x1 = (sel ? pick(x) : x) + attn_out;
  auto m = norm(b.mlp_norm, x1);
  torch::Tensor mlp;
  if (config_.arch == Arch::kLlama) {
    auto gate = b.gate.forward(m, dropout);
    progress_gather();
    auto up = b.up.forward(m, dropout);
    mlp = b.down.forward(config_.gemma ? torch::gelu(gate, "tanh") * up  // GeGLU
                                       : model_detail::swiglu(gate, up),
                         dropout);
  } else {
    mlp = b.down.forward(torch::gelu(b.up.forward(m, dropout), "tanh"), dropout);
  }
  if (b.post_mlp_norm.weight.defined()) mlp = norm(b.post_mlp_norm, mlp);
  return x1 + mlp;
}

Transformer::Geometry Transformer::geometry(torch::Tensor& x, const torch::Tensor& valid_in) const {
  const std::int64_t B = x.size(0), S = x.size(1);
  auto dev = options_.device;
  torch::Tensor valid = valid_in.defined()
                            ? valid_in.to(dev).to(torch::kBool)
                            : torch::ones({B, S}, torch::dtype(torch::kBool).device(dev));
  // Positions count real tokens only, so padding never shifts them.
  auto pos = (valid.to(torch::kLong).cumsum(1) - 1).clamp_min(0);
  // A query attends to earlier real keys, and always to itself (so a padded
  // row has one finite score and no NaN appears).
  auto causal = torch::ones({S, S}, torch::dtype(torch::kBool).device(dev)).tril();
  auto self = torch::eye(S, torch::dtype(torch::kBool).device(dev));
  Geometry g;
  g.allowed = (causal & (valid.unsqueeze(1) | self)).unsqueeze(1);  // [B, 1, S, S]
  g.blocked = g.allowed.logical_not();
  g.blocked_local = g.blocked;
  // Sliding window: a query sees keys fewer than `sliding_window` positions
  // back (positions, so padding does not narrow it; prompt rows count).
  if (config_.sliding_window > 0 && S > config_.sliding_window) {
    auto far = (pos.unsqueeze(2) - pos.unsqueeze(1)) >= config_.sliding_window;  // [B, S, S]
    g.blocked_local = g.blocked | far.unsqueeze(1);
  }
  if (config_.gemma) {
    // Gemma scales the input embeddings (prompt rows too, as Hugging Face
    // scales inputs_embeds) by sqrt(D), rounded to the activation dtype as it does.
    const double s = torch::scalar_tensor(std::sqrt(double(config_.dim)), x.scalar_type()).item<double>();
    x = x * s;
  }
  if (config_.arch == Arch::kLlama) {
    const auto& rs = config_.rope_scaling;
    using RT = RopeScaling::Type;
    // Dynamic NTK and LongRoPE choose their frequencies by the pass's length.
    const bool by_length = rs.type == RT::kDynamic || rs.type == RT::kLongRope;
    const std::int64_t max_pos = by_length && pos.numel() > 0 ? pos.max().item<std::int64_t>() : 0;
    const auto ct = compute_type(x);
    const double scale =
        config_.query_scale > 0 ? config_.query_scale : 1.0 / std::sqrt(double(config_.head_dim));
    // cos, sin and the query's (with the attention scale) for a RoPE base and scaling.
    auto tables = [&](double theta, const RopeScaling& scaling, torch::Tensor& c2, torch::Tensor& s2,
                      torch::Tensor& qc2, torch::Tensor& qs2) {
      const auto freqs = rope_inv_freq(theta, config_.head_dim, scaling, config_.max_seq_len, max_pos);
      auto inv_freq = torch::tensor(freqs, torch::kFloat64).to(dev, ct);
      auto angles = pos.to(ct).unsqueeze(-1) * inv_freq;  // [B, S, hd/2]
      auto cos = angles.cos().unsqueeze(1), sin = angles.sin().unsqueeze(1);  // [B, 1, S, hd/2]
      if (scaling.type == RT::kLongRope && scaling.attention_factor != 1.0) {
        cos = cos * scaling.attention_factor;
        sin = sin * scaling.attention_factor;
      }
      auto cos2 = torch::cat({cos, cos}, -1), sin2 = torch::cat({-sin, sin}, -1);  // [B, 1, S, hd]
      c2 = cos2.to(options_.dtype);
      s2 = sin2.to(options_.dtype);
      qc2 = (cos2 * scale).to(options_.dtype);
      qs2 = (sin2 * scale).to(options_.dtype);
    };
    tables(config_.rope_theta, rs, g.cos, g.sin, g.q_cos, g.q_sin);
    if (config_.rope_local_theta > 0)  // Gemma 3: sliding layers use their own base, unscaled
      tables(config_.rope_local_theta, RopeScaling{}, g.cos_local, g.sin_local, g.q_cos_local,
             g.q_sin_local);
  } else {
    auto max_pos = pos.max().item<std::int64_t>();
    if (max_pos >= config_.max_seq_len)
      throw InputError("input", "sequence of " + std::to_string(max_pos + 1) +
                                    " positions exceeds the model's " +
                                    std::to_string(config_.max_seq_len) + " learned positions");
    x = x + torch::embedding(pos_embeddings_, pos);
  }
  return g;
}

torch::Tensor Transformer::hidden_states(const torch::Tensor& embeddings,
                                         const torch::Tensor& valid) const {
  auto x = embeddings.to(options_.device, options_.dtype);
  auto g = geometry(x, valid);
  const std::int64_t L = std::int64_t(blocks_.size());
  for (std::int64_t l = 0; l < L; ++l) x = call_block(l, l + 1 < L ? l + 1 : -1, x, g);
  return norm(final_norm_, x);
}

torch::Tensor Transformer::hidden_after(const torch::Tensor& embeddings,
                                        const torch::Tensor& valid, std::int64_t layers) const {
  if (layers < 0 || layers > config_.n_layers)
    throw InputError("pca.source", "hidden layer " + std::to_string(layers) +
                                       " out of range [0, " + std::to_string(config_.n_layers) +
                                       "]");
  auto x = embeddings.to(options_.device, options_.dtype);
  auto g = geometry(x, valid);
  for (std::int64_t l = 0; l < layers; ++l) x = call_block(l, l + 1 < layers ? l + 1 : -1, x, g);
  return x;
}

torch::Tensor Transformer::cap_logits(const torch::Tensor& products) const {
  if (config_.final_softcap <= 0) return products;
  const double c = config_.final_softcap;
  return torch::tanh(products / c) * c;
}

torch::Tensor Transformer::prefixed_inputs(const torch::Tensor& tokens, const torch::Tensor& prefix,
                                           const torch::Tensor& attention_mask,
                                           torch::Tensor& valid) const {
  TORCH_CHECK(tokens.dim() == 2, "tokens must be [batch, length]");
  const std::int64_t B = tokens.size(0);
  auto x = embed(tokens);
  if (attention_mask.defined()) valid = attention_mask.to(options_.device).ne(0);
  if (prefix.defined()) {
    auto p = prefix.to(options_.device, options_.dtype);
    if (config_.gemma && !config_.scale_prompt_rows)  // Gemma 3: undo the input scale for prompt rows
      p = p / torch::scalar_tensor(std::sqrt(double(config_.dim)), p.scalar_type()).item<double>();
    if (p.dim() == 2) p = p.unsqueeze(0).expand({B, p.size(0), p.size(1)});
    TORCH_CHECK(p.dim() == 3 && p.size(0) == B && p.size(2) == config_.dim,
                "prefix must be [P, D] or [batch, P, D]");
    x = torch::cat({p, x}, 1);
    if (valid.defined())
      valid = torch::cat({torch::ones({B, p.size(1)}, valid.options()), valid}, 1);
  }
  return x;
}

torch::Tensor Transformer::prefixed_hidden_states(const torch::Tensor& tokens,
                                                  const torch::Tensor& prefix,
                                                  const torch::Tensor& attention_mask) const {
  torch::Tensor valid;
  auto x = prefixed_inputs(tokens, prefix, attention_mask, valid);
  return hidden_states(x, valid);
}

torch::Tensor Transformer::prefixed_hidden_at(const torch::Tensor& tokens,
                                              const torch::Tensor& prefix,
                                              const torch::Tensor& attention_mask,
                                              const torch::Tensor& positions) const {
  torch::Tensor valid;
  auto x = prefixed_inputs(tokens, prefix, attention_mask, valid).to(options_.dtype);
  const std::int64_t B = x.size(0), L = std::int64_t(blocks_.size());
  auto rows = positions.to(options_.device, torch::kLong);
  TORCH_CHECK(rows.dim() == 1 && rows.size(0) == B, "positions must be [batch]");
  auto g = geometry(x, valid);
  // The last block runs its queries at `rows` only, unless it draws LoRA
  // dropout (the masks are drawn over every position).
  bool prune = options_.prune_last_block && L > 0;
  if (prune && dropout_ != nullptr) {
    const Block& last = blocks_.back();
    for (const Linear* lin : {&last.q, &last.k, &last.v, &last.o, &last.gate, &last.up, &last.down})
      if (lin->lora && lin->lora->dropout > 0) prune = false;
  }
  for (std::int64_t l = 0; l < L - (prune ? 1 : 0); ++l) x = call_block(l, l + 1 < L ? l + 1 : -1, x, g);
  if (prune)
    x = call_last_block_at(x, g, rows).squeeze(1);
  else
    x = x.gather(1, rows.view({B, 1, 1}).expand({B, 1, x.size(2)})).squeeze(1);
  return norm(final_norm_, x);
}

torch::Tensor Transformer::forward(const torch::Tensor& tokens, const torch::Tensor& prefix,
                                   const torch::Tensor& attention_mask) const {
  return logits(prefixed_hidden_states(tokens, prefix, attention_mask));
}

}  // namespace sparc
