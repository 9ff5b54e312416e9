#include "model/transformer.h"

#include <cmath>

#include "core/error.h"
#include "core/random.h"

namespace sparc {
namespace {

std::string shape_str(c10::IntArrayRef s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

// Rotates the two halves of each head: (x1, x2) -> (x1 cos - x2 sin, x2 cos + x1 sin).
torch::Tensor apply_rope(const torch::Tensor& x, const torch::Tensor& cos,
                         const torch::Tensor& sin) {
  auto halves = x.chunk(2, -1);
  const auto& x1 = halves[0];
  const auto& x2 = halves[1];
  return torch::cat({x1 * cos - x2 * sin, x2 * cos + x1 * sin}, -1);
}

// Reductions (norms, softmax) and RoPE angles run in float32 at least, also
// when activations are bf16; a float64 model (used by gradient checks) stays float64.
torch::ScalarType compute_type(const torch::Tensor& x) {
  return torch::promote_types(x.scalar_type(), torch::kFloat32);
}

}  // namespace

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

torch::Tensor Linear::forward(const torch::Tensor& x, const DropoutKeys* dropout) const {
  auto y = torch::linear(x, weight, bias.defined() ? bias : torch::Tensor());
  if (!lora) return y;
  auto h = x.to(lora->a.scalar_type());
  if (dropout != nullptr && lora->dropout > 0) {
    // One generator per batch row, keyed by the row's global sample index.
    const double keep = 1.0 - lora->dropout;
    TORCH_CHECK(std::int64_t(dropout->sample_ids.size()) == h.size(0),
                "dropout keys for ", dropout->sample_ids.size(), " samples, batch has ", h.size(0));
    std::vector<torch::Tensor> masks;
    for (auto id : dropout->sample_ids) {
      auto gen = at::detail::createCPUGenerator(
          random_key({dropout->base, module_id, std::uint64_t(id)}));
      masks.push_back(at::bernoulli(torch::full(h.sizes().slice(1), keep), gen));
    }
    h = h * (torch::stack(masks).to(h.device(), h.scalar_type()) / keep);
  }
  auto delta = torch::linear(torch::linear(h, lora->a), lora->b) * lora->scale;
  return y + delta.to(y.scalar_type());
}

Transformer::Transformer(const WeightSource& source, const ModelOptions& options)
    : config_(source.config()), options_(options) {
  config_.validate(source.describe());
  torch::NoGradGuard no_grad;
  std::map<std::string, torch::Tensor> loaded;
  for (const auto& [name, shape] : expected_tensors(config_)) {
    const std::string stored = source.stored_name(name);
    if (!source.has(name))
      throw InputError(source.describe(), "missing tensor '" + stored + "' (expected shape " +
                                              shape_str(shape) + ")");
    torch::Tensor t = source.load(name);
    if (t.sizes() != c10::IntArrayRef(shape))
      throw InputError(source.describe(), "tensor '" + stored + "' has shape " +
                                              shape_str(t.sizes()) + ", expected " +
                                              shape_str(shape));
    if (!t.is_floating_point())
      throw InputError(source.describe(), "tensor '" + stored + "' is not floating point");
    loaded[name] = t.to(options_.device, options_.dtype).contiguous();
  }
  auto take = [&](const std::string& n) -> torch::Tensor {
    auto it = loaded.find(n);
    return it == loaded.end() ? torch::Tensor() : it->second;
  };
  tok_embeddings_ = take("tok_embeddings");
  pos_embeddings_ = take("pos_embeddings");
  lm_head_ = config_.tie_embeddings ? tok_embeddings_ : take("lm_head.weight");
  final_norm_ = {take("norm.weight"), take("norm.bias")};
  for (std::int64_t l = 0; l < config_.n_layers; ++l) {
    const std::string p = "layers." + std::to_string(l) + ".";
    auto lin = [&](const std::string& n) {
      Linear out;
      out.weight = take(p + n + ".weight");
      out.bias = take(p + n + ".bias");
      out.module_id = random_key({std::uint64_t(l), std::hash<std::string>{}(n)});
      return out;
    };
    Block b;
    b.attn_norm = {take(p + "attn_norm.weight"), take(p + "attn_norm.bias")};
    b.mlp_norm = {take(p + "mlp_norm.weight"), take(p + "mlp_norm.bias")};
    b.q = lin("q");
    b.k = lin("k");
    b.v = lin("v");
    b.o = lin("o");
    b.gate = lin("gate");
    b.up = lin("up");
    b.down = lin("down");
    blocks_.push_back(std::move(b));
  }
}

torch::Tensor Transformer::embed(const torch::Tensor& tokens) const {
  auto ids = tokens.to(options_.device, torch::kLong);
  if (ids.numel() > 0) {
    auto lo = ids.min().item<std::int64_t>();
    auto hi = ids.max().item<std::int64_t>();
    if (lo < 0 || hi >= config_.vocab_size)
      throw InputError("tokens", "token id out of range [0, " +
                                     std::to_string(config_.vocab_size) + "): found " +
                                     std::to_string(lo < 0 ? lo : hi));
  }
  return torch::embedding(tok_embeddings_, ids);
}

torch::Tensor Transformer::norm(const Norm& n, const torch::Tensor& x) const {
  if (config_.arch == Arch::kGpt2)
    return torch::layer_norm(x, {config_.dim}, n.weight, n.bias, config_.norm_eps);
  // RMSNorm in at least float32, then back to the activation dtype (as Hugging Face does).
  auto xf = x.to(compute_type(x));
  auto y = xf * torch::rsqrt(xf.pow(2).mean(-1, true) + config_.norm_eps);
  return y.to(x.scalar_type()) * n.weight;
}

torch::Tensor Transformer::run_block(const Block& b, const torch::Tensor& x,
                                     const torch::Tensor& cos, const torch::Tensor& sin,
                                     const torch::Tensor& allowed) const {
  const std::int64_t B = x.size(0), S = x.size(1);
  const std::int64_t H = config_.n_heads, KV = config_.n_kv_heads, hd = config_.head_dim;
  auto h = norm(b.attn_norm, x);
  auto q = b.q.forward(h, dropout_).view({B, S, H, hd}).transpose(1, 2);
  auto k = b.k.forward(h, dropout_).view({B, S, KV, hd}).transpose(1, 2);
  auto v = b.v.forward(h, dropout_).view({B, S, KV, hd}).transpose(1, 2);
  if (config_.arch == Arch::kLlama) {
    q = apply_rope(q, cos, sin);
    k = apply_rope(k, cos, sin);
  }
  if (KV != H) {  // grouped-query attention: query head i reads key/value head i / (H / KV)
    k = k.repeat_interleave(H / KV, 1);
    v = v.repeat_interleave(H / KV, 1);
  }
  auto scores = torch::matmul(q, k.transpose(-2, -1)) * (1.0 / std::sqrt(double(hd)));
  scores = scores.masked_fill(allowed.logical_not(), -std::numeric_limits<float>::infinity());
  auto probs = torch::softmax(scores.to(compute_type(scores)), -1).to(x.scalar_type());
  auto attn = torch::matmul(probs, v).transpose(1, 2).reshape({B, S, H * hd});
  auto x1 = x + b.o.forward(attn, dropout_);
  auto m = norm(b.mlp_norm, x1);
  torch::Tensor mlp;
  if (config_.arch == Arch::kLlama)
    mlp = b.down.forward(torch::silu(b.gate.forward(m, dropout_)) * b.up.forward(m, dropout_), dropout_);
  else
    mlp = b.down.forward(torch::gelu(b.up.forward(m, dropout_), "tanh"), dropout_);
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
  if (config_.arch == Arch::kLlama) {
    const std::int64_t half = config_.head_dim / 2;
    auto j = torch::arange(half, torch::dtype(torch::kFloat64).device(dev));
    const auto ct = compute_type(x);
    auto inv_freq = torch::pow(config_.rope_theta, -2.0 * j / double(config_.head_dim)).to(ct);
    auto angles = pos.to(ct).unsqueeze(-1) * inv_freq;  // [B, S, hd/2]
    g.cos = angles.cos().unsqueeze(1).to(options_.dtype);  // [B, 1, S, hd/2]
    g.sin = angles.sin().unsqueeze(1).to(options_.dtype);
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
  for (const auto& b : blocks_) x = run_block(b, x, g.cos, g.sin, g.allowed);
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
  for (std::int64_t l = 0; l < layers; ++l) x = run_block(blocks_[l], x, g.cos, g.sin, g.allowed);
  return x;
}

torch::Tensor Transformer::logits(const torch::Tensor& hidden) const {
  return torch::matmul(hidden, lm_head_.t()).to(compute_type(hidden));
}

torch::Tensor Transformer::prefixed_hidden_states(const torch::Tensor& tokens,
                                                  const torch::Tensor& prefix,
                                                  const torch::Tensor& attention_mask) const {
  TORCH_CHECK(tokens.dim() == 2, "tokens must be [batch, length]");
  const std::int64_t B = tokens.size(0);
  auto x = embed(tokens);
  torch::Tensor valid;
  if (attention_mask.defined()) valid = attention_mask.to(options_.device).ne(0);
  if (prefix.defined()) {
    auto p = prefix.to(options_.device, options_.dtype);
    if (p.dim() == 2) p = p.unsqueeze(0).expand({B, p.size(0), p.size(1)});
    TORCH_CHECK(p.dim() == 3 && p.size(0) == B && p.size(2) == config_.dim,
                "prefix must be [P, D] or [batch, P, D]");
    x = torch::cat({p, x}, 1);
    if (valid.defined())
      valid = torch::cat({torch::ones({B, p.size(1)}, valid.options()), valid}, 1);
  }
  return hidden_states(x, valid);
}

torch::Tensor Transformer::forward(const torch::Tensor& tokens, const torch::Tensor& prefix,
                                   const torch::Tensor& attention_mask) const {
  return logits(prefixed_hidden_states(tokens, prefix, attention_mask));
}

std::vector<std::pair<std::string, torch::Tensor>> Transformer::named_weights() const {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  auto add = [&](const std::string& n, const torch::Tensor& t) {
    if (t.defined()) out.emplace_back(n, t);
  };
  add("tok_embeddings", tok_embeddings_);
  add("pos_embeddings", pos_embeddings_);
  for (size_t l = 0; l < blocks_.size(); ++l) {
    const auto& b = blocks_[l];
    const std::string p = "layers." + std::to_string(l) + ".";
    add(p + "attn_norm.weight", b.attn_norm.weight);
    add(p + "attn_norm.bias", b.attn_norm.bias);
    const std::pair<const char*, const Linear*> lins[] = {
        {"q", &b.q}, {"k", &b.k}, {"v", &b.v}, {"o", &b.o},
        {"gate", &b.gate}, {"up", &b.up}, {"down", &b.down}};
    for (const auto& [n, lin] : lins) {
      add(p + n + ".weight", lin->weight);
      add(p + n + ".bias", lin->bias);
    }
    add(p + "mlp_norm.weight", b.mlp_norm.weight);
    add(p + "mlp_norm.bias", b.mlp_norm.bias);
  }
  add("norm.weight", final_norm_.weight);
  add("norm.bias", final_norm_.bias);
  if (!config_.tie_embeddings) add("lm_head.weight", lm_head_);
  return out;
}

void Transformer::set_weights_trainable(bool trainable) {
  for (auto& [name, t] : named_weights()) {
    auto tensor = t;  // shares storage and autograd meta with the member
    tensor.requires_grad_(trainable);
  }
}

std::int64_t Transformer::parameter_count() const {
  std::int64_t n = 0;
  for (const auto& [name, t] : named_weights()) n += t.numel();
  return n;
}

}  // namespace sparc
