// GPT-2: LayerNorm, learned positions, GELU (tanh), biases everywhere;
// Conv1D matrices stored [in, out] and q, k, v fused in c_attn (columns).
#include "core/error.h"
#include "model/hf_families.h"

namespace sparc::hf {
namespace {

void parse_gpt2(const json& j, const std::string& where, ModelConfig& c) {
  c.arch = Arch::kGpt2;
  c.dim = get_int(j, "n_embd", where);
  c.n_layers = get_int(j, "n_layer", where);
  c.n_heads = get_int(j, "n_head", where);
  c.n_kv_heads = c.n_heads;
  c.head_dim = c.n_heads > 0 ? c.dim / c.n_heads : 0;
  c.ffn_dim = get_int_or(j, "n_inner", 4 * c.dim, where);
  c.max_seq_len = get_int(j, "n_positions", where);
  c.vocab_size = get_int(j, "vocab_size", where);
  c.norm_eps = get_double_or(j, "layer_norm_epsilon", 1e-5, where);
  c.tie_embeddings = true;
  expect_string(j, "activation_function", "gelu_new", where);
}

void gpt2_names(const ModelConfig& c, NameMap& out) {
  const std::int64_t D = c.dim;
  out["tok_embeddings"] = {"wte.weight"};
  out["pos_embeddings"] = {"wpe.weight"};
  for (std::int64_t l = 0; l < c.n_layers; ++l) {
    const std::string k = "layers." + std::to_string(l) + ".", h = "h." + std::to_string(l) + ".";
    for (const char* s : {"weight", "bias"}) {
      const bool w = std::string(s) == "weight";
      const int axis = w ? 1 : 0;  // c_attn: [D, 3D] (in x out) or bias [3D]
      out[k + "attn_norm." + s] = {h + "ln_1." + s};
      out[k + "mlp_norm." + s] = {h + "ln_2." + s};
      out[k + "q." + s] = {h + "attn.c_attn." + s, w, axis, 0, D};
      out[k + "k." + s] = {h + "attn.c_attn." + s, w, axis, D, D};
      out[k + "v." + s] = {h + "attn.c_attn." + s, w, axis, 2 * D, D};
      out[k + "o." + s] = {h + "attn.c_proj." + s, w};
      out[k + "up." + s] = {h + "mlp.c_fc." + s, w};
      out[k + "down." + s] = {h + "mlp.c_proj." + s, w};
    }
  }
  out["norm.weight"] = {"ln_f.weight"};
  out["norm.bias"] = {"ln_f.bias"};
}

}  // namespace

extern const Family kGpt2Family{"gpt2", parse_gpt2, gpt2_names, {"", "transformer."}};

}  // namespace sparc::hf
