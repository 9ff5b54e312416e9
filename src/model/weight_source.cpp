#include "model/weight_source.h"

#include "core/error.h"

namespace sparc {

TensorMapSource::TensorMapSource(ModelConfig config, std::map<std::string, torch::Tensor> tensors,
                                 std::string name)
    : config_(std::move(config)), tensors_(std::move(tensors)), name_(std::move(name)) {}

torch::Tensor TensorMapSource::load(const std::string& name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) throw InputError(name_, "missing tensor '" + name + "'");
  return it->second;
}

std::vector<std::pair<std::string, std::vector<std::int64_t>>> expected_tensors(
    const ModelConfig& c) {
  std::vector<std::pair<std::string, std::vector<std::int64_t>>> out;
  const bool gpt2 = c.arch == Arch::kGpt2;
  const std::int64_t D = c.dim, F = c.ffn_dim;
  out.push_back({"tok_embeddings", {c.vocab_size, D}});
  if (gpt2) out.push_back({"pos_embeddings", {c.max_seq_len, D}});
  auto linear = [&](const std::string& p, std::int64_t o, std::int64_t i, bool bias) {
    out.push_back({p + ".weight", {o, i}});
    if (bias) out.push_back({p + ".bias", {o}});
  };
  auto norm = [&](const std::string& p) {
    out.push_back({p + ".weight", {D}});
    if (gpt2) out.push_back({p + ".bias", {D}});
  };
  for (std::int64_t l = 0; l < c.n_layers; ++l) {
    const std::string p = "layers." + std::to_string(l) + ".";
    const bool qkv_bias = gpt2 || c.qkv_bias;
    norm(p + "attn_norm");
    linear(p + "q", c.q_dim(), D, qkv_bias);
    linear(p + "k", c.kv_dim(), D, qkv_bias);
    linear(p + "v", c.kv_dim(), D, qkv_bias);
    if (c.qk_norm) {  // Qwen3: per-head RMSNorm weights of q and k
      out.push_back({p + "q_norm.weight", {c.head_dim}});
      out.push_back({p + "k_norm.weight", {c.head_dim}});
    }
    linear(p + "o", D, c.q_dim(), gpt2);
    norm(p + "mlp_norm");
    if (c.gemma) {
      norm(p + "post_attn_norm");
      norm(p + "post_mlp_norm");
    }
    if (!gpt2) linear(p + "gate", F, D, false);
    linear(p + "up", F, D, gpt2);
    linear(p + "down", D, F, gpt2);
  }
  norm("norm");
  if (!c.tie_embeddings) out.push_back({"lm_head.weight", {c.vocab_size, D}});
  return out;
}

torch::Tensor random_weight(const std::string& name, const std::vector<std::int64_t>& shape,
                            at::Generator& gen) {
  const bool is_norm = name.find("norm") != std::string::npos;
  const bool is_bias = name.size() > 5 && name.compare(name.size() - 5, 5, ".bias") == 0;
  if (is_norm && !is_bias) return torch::ones(shape);
  return at::normal(0.0, is_bias ? 0.01 : 0.02, shape, gen);
}

std::unique_ptr<TensorMapSource> random_weights(const ModelConfig& config, std::uint64_t seed) {
  config.validate("random model");
  auto gen = at::detail::createCPUGenerator(seed);
  std::map<std::string, torch::Tensor> tensors;
  for (const auto& [name, shape] : expected_tensors(config))
    tensors.emplace(name, random_weight(name, shape, gen));
  return std::make_unique<TensorMapSource>(config, std::move(tensors), "random model");
}

namespace {
torch::Tensor permute_rows(const torch::Tensor& w, std::int64_t hd, bool to_half) {
  auto shape = w.sizes().vec();
  const std::int64_t heads = shape[0] / hd;
  std::vector<std::int64_t> grouped = {heads, hd / 2, 2};
  grouped.insert(grouped.end(), shape.begin() + 1, shape.end());
  if (to_half) {
    // [heads, hd/2 (pair j), 2 (member)] -> [heads, 2, hd/2]: member-major = half-split.
    return w.reshape(grouped).transpose(1, 2).reshape(shape).contiguous();
  }
  std::vector<std::int64_t> halves = {heads, 2, hd / 2};
  halves.insert(halves.end(), shape.begin() + 1, shape.end());
  return w.reshape(halves).transpose(1, 2).reshape(shape).contiguous();
}
}  // namespace

torch::Tensor pair_to_half_rope_rows(const torch::Tensor& w, std::int64_t head_dim) {
  return permute_rows(w, head_dim, true);
}

torch::Tensor half_to_pair_rope_rows(const torch::Tensor& w, std::int64_t head_dim) {
  return permute_rows(w, head_dim, false);
}

}  // namespace sparc
