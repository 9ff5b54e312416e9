// Internal to the Hugging Face loader (hf_model.cpp, family_*.cpp): one
// family per model_type, each in its own file, found by hf_family().
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "model/model_config.h"

namespace sparc::hf {

using nlohmann::json;

// config.json fields; errors name the file and the key.
std::int64_t get_int(const json& j, const char* key, const std::string& where);
std::int64_t get_int_or(const json& j, const char* key, std::int64_t fallback, const std::string& where);
double get_double_or(const json& j, const char* key, double fallback, const std::string& where);
bool get_bool_or(const json& j, const char* key, bool fallback, const std::string& where);
// Refuses a string field whose value is not `expected` (absent is accepted).
void expect_string(const json& j, const char* key, const char* expected, const std::string& where);

// A canonical tensor as stored: one safetensors tensor, or a range of one
// along `axis` (fused projections: gpt2's c_attn, phi3's qkv_proj and
// gate_up_proj); Conv1D matrices are stored [in, out] (transpose).
struct Stored {
  std::string name;
  bool transpose = false;
  int axis = -1;  // -1: the whole tensor
  std::int64_t begin = 0, length = 0;
  bool absolute = false;  // the name carries no model prefix (lm_head.weight)
  bool plus_one = false;  // Gemma's RMSNorm weights w, served as 1 + w
};
using NameMap = std::map<std::string, Stored>;  // canonical -> stored

struct Family {
  const char* model_type;
  // Fills a config from config.json (the arch and the family's keys).
  void (*parse)(const json& j, const std::string& where, ModelConfig& c);
  // Canonical -> stored names, relative to one of `prefixes` (the first that
  // the files hold wins).
  void (*names)(const ModelConfig& c, NameMap& out);
  std::vector<std::string> prefixes;
  // Prefixes of `absolute` names (multimodal checkpoints nest lm_head).
  std::vector<std::string> head_prefixes = {""};
};

// The family of a model_type, or nullptr; and the accepted types, for errors.
const Family* hf_family(const std::string& model_type);
std::string hf_family_list();

// Shared by the llama-like families (family_llama.cpp).
// The keys every llama-like config has (sizes, norms, RoPE and its scaling).
void parse_llama_common(const json& j, const std::string& where, ModelConfig& c);
// rope_theta and `rope_scaling` (or `rope_parameters`) into c.
void parse_rope(const json& j, const std::string& where, ModelConfig& c);
// Sliding layers of qwen2/qwen3 (use_sliding_window, max_window_layers) or `layer_types`.
void parse_sliding(const json& j, const std::string& where, ModelConfig& c, bool default_all);
// model.layers.<i>.self_attn.{q,k,v,o}_proj, mlp.{gate,up,down}_proj, the norms.
void llama_names(const ModelConfig& c, NameMap& out);

}  // namespace sparc::hf
