// Gemma 2 (`gemma2`) and Gemma 3 text (`gemma3_text`: Gemma3ForCausalLM;
// `gemma3`: the language model of the multimodal checkpoints, config in
// text_config, weights under language_model): inputs times sqrt(D), (1 + w)
// RMSNorm, norms before and after attention and the MLP, GeGLU (gelu tanh),
// attention scaled by query_pre_attn_scalar^-1/2, sliding-window and global
// layers. Gemma 2 soft-caps attention scores and logits; Gemma 3 has q/k
// norms and a RoPE base of its own on sliding layers (rope_local_base_freq).
#include <cmath>

#include "core/error.h"
#include "model/hf_families.h"

namespace sparc::hf {
namespace {

// Defaults are transformers' Gemma2Config / Gemma3TextConfig ones: the
// multimodal checkpoints' text_config leaves some keys out.
void parse_gemma_text(const json& j, const std::string& where, ModelConfig& c, bool gemma3) {
  c.arch = Arch::kLlama;
  c.gemma = true;
  c.dim = get_int_or(j, "hidden_size", 2304, where);
  c.n_layers = get_int_or(j, "num_hidden_layers", 26, where);
  c.n_heads = get_int_or(j, "num_attention_heads", 8, where);
  c.n_kv_heads = get_int_or(j, "num_key_value_heads", 4, where);
  c.head_dim = get_int_or(j, "head_dim", 256, where);
  c.ffn_dim = get_int_or(j, "intermediate_size", 9216, where);
  c.max_seq_len = get_int_or(j, "max_position_embeddings", gemma3 ? 131072 : 8192, where);
  c.vocab_size = get_int_or(j, "vocab_size", gemma3 ? 262208 : 256000, where);
  c.norm_eps = get_double_or(j, "rms_norm_eps", 1e-6, where);
  c.tie_embeddings = get_bool_or(j, "tie_word_embeddings", true, where);
  for (const char* key : {"hidden_activation", "hidden_act"})
    if (j.contains(key) && !j[key].is_null()) expect_string(j, key, "gelu_pytorch_tanh", where);
  if (get_bool_or(j, "attention_bias", false, where))
    throw InputError(where, "attention_bias = true is not supported");
  c.query_scale = 1.0 / std::sqrt(get_double_or(j, "query_pre_attn_scalar", 256.0, where));
  // Absent: the family's default; null: no capping.
  auto softcap = [&](const char* key, double absent) {
    return !j.contains(key) ? absent : get_double_or(j, key, 0.0, where);
  };
  c.attn_softcap = softcap("attn_logit_softcapping", gemma3 ? 0.0 : 50.0);
  c.final_softcap = softcap("final_logit_softcapping", gemma3 ? 0.0 : 30.0);
  if (c.attn_softcap < 0 || c.final_softcap < 0)
    throw InputError(where, "attn_logit_softcapping / final_logit_softcapping must not be negative");
  // Transformers 5 writes Gemma 3's RoPE per layer type: rope_parameters
  // {full_attention: {...}, sliding_attention: {...}}.
  const json* per_type = j.contains("rope_parameters") && j["rope_parameters"].is_object() &&
                                 j["rope_parameters"].contains("full_attention")
                             ? &j["rope_parameters"]
                             : nullptr;
  if (per_type) {
    json global = {{"rope_parameters", (*per_type)["full_attention"]}};
    c.rope_theta = gemma3 ? 1000000.0 : 10000.0;
    global["rope_theta"] = c.rope_theta;
    parse_rope(global, where, c);
  } else {
    parse_rope(j, where, c);
    const bool theta_given = j.contains("rope_theta") ||
                             (j.contains("rope_parameters") && j["rope_parameters"].is_object() &&
                              j["rope_parameters"].contains("rope_theta"));
    if (gemma3 && !theta_given) c.rope_theta = 1000000.0;
  }
  if (gemma3) {
    c.qk_norm = true;
    c.scale_prompt_rows = false;
    c.rope_local_theta = get_double_or(j, "rope_local_base_freq", 10000.0, where);
    if (per_type && per_type->contains("sliding_attention"))
      c.rope_local_theta =
          get_double_or((*per_type)["sliding_attention"], "rope_theta", c.rope_local_theta, where);
  }
  // Which layers slide: layer_types, else Gemma 2 alternates (even layers
  // slide), Gemma 3 slides all but every sliding_window_pattern-th.
  c.sliding_window = get_int_or(j, "sliding_window", 4096, where);
  if (j.contains("layer_types") && !j["layer_types"].is_null()) {
    parse_sliding(j, where, c, /*default_all=*/true);
  } else {
    const std::int64_t pattern = gemma3 ? get_int_or(j, "sliding_window_pattern", 6, where) : 2;
    if (pattern <= 0) throw InputError(where, "sliding_window_pattern must be positive");
    c.sliding_layers.clear();
    for (std::int64_t l = 0; l < c.n_layers; ++l) c.sliding_layers.push_back((l + 1) % pattern != 0);
  }
}

void parse_gemma2(const json& j, const std::string& where, ModelConfig& c) {
  parse_gemma_text(j, where, c, false);
}

void parse_gemma3_text(const json& j, const std::string& where, ModelConfig& c) {
  parse_gemma_text(j, where, c, true);
}

void parse_gemma3(const json& j, const std::string& where, ModelConfig& c) {
  if (!j.contains("text_config") || !j["text_config"].is_object())
    throw InputError(where, "gemma3: missing object 'text_config'");
  json text = j["text_config"];
  if (!text.contains("tie_word_embeddings") && j.contains("tie_word_embeddings"))
    text["tie_word_embeddings"] = j["tie_word_embeddings"];
  parse_gemma_text(text, where + ": text_config", c, true);
}

void gemma_names(const ModelConfig& c, NameMap& out) {
  llama_names(c, out);
  for (auto& [canon, stored] : out)
    if (canon.find("norm.weight") != std::string::npos) stored.plus_one = true;
  for (std::int64_t l = 0; l < c.n_layers; ++l) {
    const std::string p = "layers." + std::to_string(l) + ".";
    out[p + "mlp_norm.weight"].name = p + "pre_feedforward_layernorm.weight";
    out[p + "post_attn_norm.weight"] = {p + "post_attention_layernorm.weight"};
    out[p + "post_mlp_norm.weight"] = {p + "post_feedforward_layernorm.weight"};
    for (const char* n : {"post_attn_norm.weight", "post_mlp_norm.weight"}) out[p + n].plus_one = true;
    if (c.qk_norm) {
      out[p + "q_norm.weight"] = {p + "self_attn.q_norm.weight"};
      out[p + "k_norm.weight"] = {p + "self_attn.k_norm.weight"};
      out[p + "q_norm.weight"].plus_one = out[p + "k_norm.weight"].plus_one = true;
    }
  }
}

}  // namespace

extern const Family kGemma2Family{"gemma2", parse_gemma2, gemma_names, {"model.", ""}};
extern const Family kGemma3TextFamily{"gemma3_text", parse_gemma3_text, gemma_names,
                                      {"model.", ""}};
// Multimodal: transformers before 4.52 saved language_model.model.*, later
// versions model.language_model.*; the vision tower is not read.
extern const Family kGemma3Family{"gemma3", parse_gemma3, gemma_names,
                                  {"language_model.model.", "model.language_model.", "model."},
                                  {"language_model.", ""}};

}  // namespace sparc::hf
