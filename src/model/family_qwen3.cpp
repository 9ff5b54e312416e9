// Qwen3: llama blocks with an RMSNorm over each query and key head before
// RoPE (self_attn.q_norm / k_norm, weight [head_dim]), no q/k/v bias, and a
// head_dim of its own (not hidden_size / heads in the larger models).
#include "core/error.h"
#include "model/hf_families.h"

namespace sparc::hf {
namespace {

void parse_qwen3(const json& j, const std::string& where, ModelConfig& c) {
  parse_llama_common(j, where, c);
  c.qk_norm = true;
  c.qkv_bias = false;
  parse_sliding(j, where, c, /*default_all=*/false);
}

void qwen3_names(const ModelConfig& c, NameMap& out) {
  llama_names(c, out);
  for (std::int64_t l = 0; l < c.n_layers; ++l) {
    const std::string p = "layers." + std::to_string(l) + ".";
    out[p + "q_norm.weight"] = {p + "self_attn.q_norm.weight"};
    out[p + "k_norm.weight"] = {p + "self_attn.k_norm.weight"};
  }
}

}  // namespace

extern const Family kQwen3Family{"qwen3", parse_qwen3, qwen3_names, {"model.", ""}};

}  // namespace sparc::hf
