// Phi-3 / Phi-3.5: llama blocks whose q, k, v come fused in one qkv_proj
// (rows [q; k; v]) and gate and up in one gate_up_proj (rows [gate; up]),
// split on load into the canonical projections; LongRoPE (`longrope`, or
// `su` in the first releases) with short and long factors; a sliding window.
#include "core/error.h"
#include "model/hf_families.h"

namespace sparc::hf {
namespace {

void parse_phi3(const json& j, const std::string& where, ModelConfig& c) {
  parse_llama_common(j, where, c);
  c.qkv_bias = false;
  if (get_double_or(j, "partial_rotary_factor", 1.0, where) != 1.0)
    throw InputError(where, "partial_rotary_factor " + j["partial_rotary_factor"].dump() +
                                " is not supported, expected 1.0 (RoPE over the whole head)");
  parse_sliding(j, where, c, /*default_all=*/true);
}

void phi3_names(const ModelConfig& c, NameMap& out) {
  llama_names(c, out);
  const std::int64_t Q = c.q_dim(), KV = c.kv_dim(), F = c.ffn_dim;
  for (std::int64_t l = 0; l < c.n_layers; ++l) {
    const std::string p = "layers." + std::to_string(l) + ".";
    const std::string qkv = p + "self_attn.qkv_proj.weight", gate_up = p + "mlp.gate_up_proj.weight";
    for (const char* b : {"q.bias", "k.bias", "v.bias"}) out.erase(p + b);
    out[p + "q.weight"] = {qkv, false, 0, 0, Q};
    out[p + "k.weight"] = {qkv, false, 0, Q, KV};
    out[p + "v.weight"] = {qkv, false, 0, Q + KV, KV};
    out[p + "gate.weight"] = {gate_up, false, 0, 0, F};
    out[p + "up.weight"] = {gate_up, false, 0, F, F};
  }
}

}  // namespace

extern const Family kPhi3Family{"phi3", parse_phi3, phi3_names, {"model.", ""}};

}  // namespace sparc::hf
