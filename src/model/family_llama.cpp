// The llama-like Hugging Face families: llama (Llama 1-3.x, SmolLM,
// TinyLlama), mistral (sliding window) and qwen2 (q/k/v biases), and what
// the other llama-like families share: RoPE scaling, sliding layers, names.
#include <cmath>

#include "core/error.h"
#include "model/hf_families.h"

namespace sparc::hf {
namespace {

double positive_number(const json& o, const std::string& key, const std::string& where,
                       const std::string& scope) {
  if (!o.contains(key) || !o[key].is_number())
    throw InputError(where, scope + "." + key + ": missing or not a number");
  const double v = o[key].get<double>();
  if (!(v > 0)) throw InputError(where, scope + "." + key + " = " + o[key].dump() + ", expected a positive number");
  return v;
}

std::vector<double> factor_list(const json& o, const std::string& key, const std::string& where,
                                const std::string& scope) {
  if (!o.contains(key) || !o[key].is_array())
    throw InputError(where, scope + "." + key + ": missing or not a list of numbers");
  std::vector<double> out;
  for (const auto& v : o[key]) {
    if (!v.is_number() || !(v.get<double>() > 0))
      throw InputError(where, scope + "." + key + " holds " + v.dump() + ", expected positive numbers");
    out.push_back(v.get<double>());
  }
  return out;
}

void parse_llama(const json& j, const std::string& where, ModelConfig& c) {
  parse_llama_common(j, where, c);
  c.qkv_bias = c.family == "qwen2";
  if (c.family == "mistral") parse_sliding(j, where, c, /*default_all=*/true);
  if (c.family == "qwen2") parse_sliding(j, where, c, /*default_all=*/false);
}

}  // namespace

void parse_rope(const json& j, const std::string& where, ModelConfig& c) {
  using T = RopeScaling::Type;
  // Transformers 5 writes `rope_parameters` (rope_theta inside); earlier
  // versions `rope_scaling` beside a top-level rope_theta.
  const char* key = j.contains("rope_scaling") && !j["rope_scaling"].is_null() ? "rope_scaling"
                    : j.contains("rope_parameters") && !j["rope_parameters"].is_null()
                        ? "rope_parameters"
                        : nullptr;
  c.rope_theta = get_double_or(j, "rope_theta", 10000.0, where);
  if (!key) return;
  const json& o = j[key];
  if (!o.is_object()) throw InputError(where, std::string(key) + " must be an object");
  if (o.contains("full_attention") || o.contains("sliding_attention"))
    throw InputError(where, std::string(key) + " per layer type is read for Gemma 3 only");
  c.rope_theta = get_double_or(o, "rope_theta", c.rope_theta, where);
  const char* type_key = o.contains("rope_type") ? "rope_type" : "type";
  const std::string type = o.contains(type_key) ? (o[type_key].is_string() ? o[type_key].get<std::string>() : o[type_key].dump()) : "default";
  const std::string scope = key;
  RopeScaling& s = c.rope_scaling;
  if (type == "default") {
    s.type = T::kNone;
  } else if (type == "linear" || type == "dynamic") {
    s.type = type == "linear" ? T::kLinear : T::kDynamic;
    s.factor = positive_number(o, "factor", where, scope);
  } else if (type == "llama3") {
    s.type = T::kLlama3;
    s.factor = positive_number(o, "factor", where, scope);
    s.low_freq_factor = positive_number(o, "low_freq_factor", where, scope);
    s.high_freq_factor = positive_number(o, "high_freq_factor", where, scope);
    s.original_max_positions =
        std::int64_t(positive_number(o, "original_max_position_embeddings", where, scope));
    if (!(s.high_freq_factor > s.low_freq_factor))
      throw InputError(where, scope + ".high_freq_factor must exceed " + scope + ".low_freq_factor");
  } else if (type == "longrope" || type == "su") {
    s.type = T::kLongRope;
    s.short_factor = factor_list(o, "short_factor", where, scope);
    s.long_factor = factor_list(o, "long_factor", where, scope);
    // As Hugging Face: with a top-level original_max_position_embeddings
    // (Phi-3) the factor is the ratio of the two lengths.
    const std::int64_t top = get_int_or(j, "original_max_position_embeddings", 0, where);
    if (top > 0) {
      s.original_max_positions = top;
      s.factor = double(c.max_seq_len) / double(top);
    } else {
      s.original_max_positions = get_int_or(o, "original_max_position_embeddings", c.max_seq_len, where);
      s.factor = o.contains("factor") ? positive_number(o, "factor", where, scope) : 1.0;
    }
    if (o.contains("attention_factor") && !o["attention_factor"].is_null())
      s.attention_factor = positive_number(o, "attention_factor", where, scope);
    else
      s.attention_factor = s.factor <= 1.0 ? 1.0
                           : std::sqrt(1.0 + std::log(s.factor) /
                                                 std::log(double(s.original_max_positions)));
  } else {
    throw InputError(where, scope + "." + type_key + " '" + type +
                                "' is not supported; expected default, linear, dynamic, llama3 "
                                "or longrope (su)");
  }
}

void parse_sliding(const json& j, const std::string& where, ModelConfig& c, bool default_all) {
  c.sliding_window = get_int_or(j, "sliding_window", 0, where);
  c.sliding_layers.clear();
  if (!default_all && !get_bool_or(j, "use_sliding_window", false, where)) c.sliding_window = 0;
  if (c.sliding_window == 0) return;
  if (j.contains("layer_types") && !j["layer_types"].is_null()) {
    if (!j["layer_types"].is_array())
      throw InputError(where, "layer_types must be a list of \"sliding_attention\" / \"full_attention\"");
    for (const auto& t : j["layer_types"]) {
      if (t != "sliding_attention" && t != "full_attention")
        throw InputError(where, "layer_types holds " + t.dump() +
                                    ", expected \"sliding_attention\" or \"full_attention\"");
      c.sliding_layers.push_back(t == "sliding_attention");
    }
  } else if (!default_all) {
    // Qwen: the layers from max_window_layers on use the window.
    const std::int64_t first = get_int_or(j, "max_window_layers", 0, where);
    for (std::int64_t l = 0; l < c.n_layers; ++l) c.sliding_layers.push_back(l >= first);
  }
}

void parse_llama_common(const json& j, const std::string& where, ModelConfig& c) {
  c.arch = Arch::kLlama;
  c.dim = get_int(j, "hidden_size", where);
  c.n_layers = get_int(j, "num_hidden_layers", where);
  c.n_heads = get_int(j, "num_attention_heads", where);
  c.n_kv_heads = get_int_or(j, "num_key_value_heads", c.n_heads, where);
  c.head_dim = get_int_or(j, "head_dim", c.n_heads > 0 ? c.dim / c.n_heads : 0, where);
  c.ffn_dim = get_int(j, "intermediate_size", where);
  c.max_seq_len = get_int_or(j, "max_position_embeddings", 2048, where);
  c.vocab_size = get_int(j, "vocab_size", where);
  c.norm_eps = get_double_or(j, "rms_norm_eps", 1e-6, where);
  c.tie_embeddings = get_bool_or(j, "tie_word_embeddings", false, where);
  if (get_bool_or(j, "attention_bias", false, where))
    throw InputError(where, "attention_bias = true (a bias on o_proj too) is not supported");
  if (get_bool_or(j, "mlp_bias", false, where))
    throw InputError(where, "mlp_bias = true is not supported");
  expect_string(j, "hidden_act", "silu", where);
  parse_rope(j, where, c);
}

void llama_names(const ModelConfig& c, NameMap& out) {
  out["tok_embeddings"] = {"embed_tokens.weight"};
  for (std::int64_t l = 0; l < c.n_layers; ++l) {
    const std::string p = "layers." + std::to_string(l) + ".";
    out[p + "attn_norm.weight"] = {p + "input_layernorm.weight"};
    out[p + "mlp_norm.weight"] = {p + "post_attention_layernorm.weight"};
    for (const char* s : {"weight", "bias"}) {
      out[p + "q." + s] = {p + "self_attn.q_proj." + s};
      out[p + "k." + s] = {p + "self_attn.k_proj." + s};
      out[p + "v." + s] = {p + "self_attn.v_proj." + s};
    }
    out[p + "o.weight"] = {p + "self_attn.o_proj.weight"};
    out[p + "gate.weight"] = {p + "mlp.gate_proj.weight"};
    out[p + "up.weight"] = {p + "mlp.up_proj.weight"};
    out[p + "down.weight"] = {p + "mlp.down_proj.weight"};
  }
  out["norm.weight"] = {"norm.weight"};
  Stored head{"lm_head.weight"};
  head.absolute = true;
  out["lm_head.weight"] = head;
}

extern const Family kLlamaFamily{"llama", parse_llama, llama_names, {"model.", ""}};
extern const Family kMistralFamily{"mistral", parse_llama, llama_names, {"model.", ""}};
extern const Family kQwen2Family{"qwen2", parse_llama, llama_names, {"model.", ""}};

}  // namespace sparc::hf
