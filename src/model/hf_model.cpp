#include "model/hf_model.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "core/error.h"
#include "core/file.h"
#include "formats/safetensors.h"
#include "model/hf_families.h"

namespace sparc {
namespace hf {

std::int64_t get_int(const json& j, const char* key, const std::string& where) {
  if (!j.contains(key) || j[key].is_null())
    throw InputError(where, std::string("missing field '") + key + "'");
  if (!j[key].is_number_integer())
    throw InputError(where, std::string("field '") + key + "' must be an integer");
  return j[key].get<std::int64_t>();
}

std::int64_t get_int_or(const json& j, const char* key, std::int64_t fallback,
                        const std::string& where) {
  return (j.contains(key) && !j[key].is_null()) ? get_int(j, key, where) : fallback;
}

double get_double_or(const json& j, const char* key, double fallback, const std::string& where) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  if (!j[key].is_number())
    throw InputError(where, std::string("field '") + key + "' must be a number");
  return j[key].get<double>();
}

bool get_bool_or(const json& j, const char* key, bool fallback, const std::string& where) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  if (!j[key].is_boolean())
    throw InputError(where, std::string("field '") + key + "' must be true or false");
  return j[key].get<bool>();
}

void expect_string(const json& j, const char* key, const char* expected, const std::string& where) {
  if (j.contains(key) && j[key] != expected)
    throw InputError(where, std::string(key) + " " + j[key].dump() +
                                " is not supported, expected \"" + expected + "\"");
}

extern const Family kLlamaFamily, kMistralFamily, kQwen2Family, kQwen3Family, kPhi3Family,
    kGemma2Family, kGemma3TextFamily, kGemma3Family, kGpt2Family;

// The families by model_type: one line per family file.
const Family* const kFamilies[] = {&kLlamaFamily,  &kMistralFamily,    &kQwen2Family,
                                   &kQwen3Family,  &kPhi3Family,       &kGemma2Family,
                                   &kGemma3TextFamily, &kGemma3Family, &kGpt2Family};

const Family* hf_family(const std::string& model_type) {
  for (const Family* f : kFamilies)
    if (model_type == f->model_type) return f;
  return nullptr;
}

std::string hf_family_list() {
  std::string out;
  for (const Family* f : kFamilies) out += (out.empty() ? "" : ", ") + std::string(f->model_type);
  return out;
}

}  // namespace hf

namespace {

using nlohmann::json;
using hf::Stored;

torch::Dtype torch_dtype(DType d, const std::string& where) {
  switch (d) {
    case DType::F32: return torch::kFloat32;
    case DType::F16: return torch::kFloat16;
    case DType::BF16: return torch::kBFloat16;
    case DType::F64: return torch::kFloat64;
    default: throw InputError(where, std::string("dtype ") + dtype_name(d) +
                                         " is not a floating-point weight type");
  }
}

class HfDirectorySource : public WeightSource {
 public:
  explicit HfDirectorySource(const std::string& dir) : dir_(dir) {
    const std::string cfg_path = dir + "/config.json";
    if (!file_exists(cfg_path))
      throw InputError(dir, "no config.json: not a Hugging Face model directory");
    config_ = parse_hf_config(read_text_file(cfg_path), cfg_path);
    family_ = hf::hf_family(config_.family);
    open_weights();
    build_names();
  }
  const ModelConfig& config() const override { return config_; }
  std::string describe() const override { return dir_; }
  std::string stored_name(const std::string& name) const override {
    auto it = names_.find(name);
    return it == names_.end() ? name : it->second.name;
  }
  bool has(const std::string& name) const override {
    auto it = names_.find(name);
    return it != names_.end() && file_of_.count(it->second.name) != 0;
  }
  torch::Tensor load(const std::string& name) const override {
    if (!has(name)) throw InputError(dir_, "missing tensor '" + stored_name(name) + "'");
    const Stored& s = names_.at(name);
    const SafetensorsReader& r = *readers_.at(file_of_.at(s.name));
    const TensorInfo& info = r.info(s.name);
    auto t = torch::empty(info.shape, torch_dtype(info.dtype, r.path() + ": tensor '" + s.name + "'"));
    r.read(s.name, t.data_ptr());
    if (s.axis >= 0) t = t.narrow(s.axis, s.begin, s.length);  // one part of a fused tensor
    if (s.plus_one) t = t.to(torch::kFloat32) + 1;  // in f32 (kept), as Gemma's norms compute it
    if (s.transpose) t = t.t();
    return t.contiguous();
  }
  Meta meta(const std::string& name) const override {
    if (!has(name)) throw InputError(dir_, "missing tensor '" + stored_name(name) + "'");
    const Stored& s = names_.at(name);
    const SafetensorsReader& r = *readers_.at(file_of_.at(s.name));
    const TensorInfo& info = r.info(s.name);
    Meta m{info.shape, info.dtype == DType::F64 || info.dtype == DType::F32 ||
                           info.dtype == DType::F16 || info.dtype == DType::BF16};
    if (s.axis >= 0 && std::int64_t(m.shape.size()) > s.axis) m.shape[size_t(s.axis)] = s.length;
    if (s.transpose && m.shape.size() == 2) std::swap(m.shape[0], m.shape[1]);
    return m;
  }
  torch::Tensor load_elements(const std::string& name, std::int64_t first,
                              std::int64_t count) const override {
    if (!has(name) || names_.at(name).axis >= 0 || names_.at(name).transpose ||
        names_.at(name).plus_one)
      return WeightSource::load_elements(name, first, count);  // absent, or another layout
    const Stored& s = names_.at(name);
    const SafetensorsReader& r = *readers_.at(file_of_.at(s.name));
    const TensorInfo& info = r.info(s.name);
    auto t = torch::empty({count},
                          torch_dtype(info.dtype, r.path() + ": tensor '" + s.name + "'"));
    r.read_elements(s.name, first, count, t.data_ptr());
    return t;
  }

 private:
  void open_weights() {
    const std::string single = dir_ + "/model.safetensors";
    const std::string index = dir_ + "/model.safetensors.index.json";
    if (file_exists(single)) {
      add_file("model.safetensors");
    } else if (file_exists(index)) {
      json j;
      try {
        j = json::parse(read_text_file(index));
      } catch (const json::exception& e) {
        throw InputError(index, std::string("invalid JSON: ") + e.what());
      }
      if (!j.contains("weight_map") || !j["weight_map"].is_object())
        throw InputError(index, "missing object 'weight_map'");
      for (const auto& [tensor, file] : j["weight_map"].items()) {
        if (!file.is_string())
          throw InputError(index, "weight_map entry '" + tensor + "' must name a file");
        const std::string f = file.get<std::string>();
        if (f.find('/') != std::string::npos)
          throw InputError(index, "weight_map file '" + f + "' must be inside the directory");
        if (!readers_.count(f)) add_file(f);
        if (!readers_.at(f)->contains(tensor))
          throw InputError(dir_ + "/" + f, "has no tensor '" + tensor + "' although " +
                                               "model.safetensors.index.json says it does");
      }
    } else {
      throw InputError(dir_, "no model.safetensors or model.safetensors.index.json");
    }
  }

  void add_file(const std::string& file) {
    auto reader = std::make_unique<SafetensorsReader>(dir_ + "/" + file);
    for (const auto& t : reader->tensors()) file_of_[t.name] = file;
    readers_[file] = std::move(reader);
  }

  // Finds the stored prefix (e.g. "model." or "transformer.") of a tensor name.
  std::string with_prefix(const std::vector<std::string>& prefixes, const std::string& name) {
    for (const auto& p : prefixes)
      if (file_of_.count(p + name)) return p + name;
    return prefixes.front() + name;  // absent: reported by name when loaded
  }

  void build_names() {
    hf::NameMap names;
    family_->names(config_, names);
    for (auto& [canon, stored] : names) {
      stored.name = with_prefix(stored.absolute ? family_->head_prefixes : family_->prefixes, stored.name);
      names_[canon] = stored;
    }
  }

  std::string dir_;
  ModelConfig config_;
  const hf::Family* family_ = nullptr;
  std::map<std::string, std::unique_ptr<SafetensorsReader>> readers_;  // by file name
  std::map<std::string, std::string> file_of_;                         // tensor -> file
  std::map<std::string, Stored> names_;                                // canonical -> stored
};

}  // namespace

ModelConfig parse_hf_config(const std::string& text, const std::string& where) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    throw InputError(where, std::string("invalid JSON: ") + e.what());
  }
  if (!j.is_object()) throw InputError(where, "expected a JSON object");
  if (!j.contains("model_type") || !j["model_type"].is_string())
    throw InputError(where, "missing string field 'model_type'");
  const std::string type = j["model_type"].get<std::string>();
  const hf::Family* family = hf::hf_family(type);
  if (!family)
    throw InputError(where, "unknown model_type '" + type + "', expected one of " +
                                hf::hf_family_list());
  ModelConfig c;
  c.family = type;
  family->parse(j, where, c);
  c.validate(where);
  return c;
}

std::unique_ptr<WeightSource> open_hf_directory(const std::string& dir) {
  return std::make_unique<HfDirectorySource>(dir);
}

void write_hf_llama_directory(const WeightSource& source, const std::string& dir,
                              const std::string& dtype) {
  write_hf_llama_tensors(source.config(), dir, dtype,
                         [&](const std::string& name, const std::vector<std::int64_t>&) {
                           return source.load(name);
                         });
}

void write_hf_llama_tensors(const ModelConfig& c, const std::string& dir, const std::string& dtype,
                            const TensorOf& tensor_of) {
  if (c.arch != Arch::kLlama) throw InputError(dir, "only llama models can be written");
  if (c.qk_norm || c.sliding_window > 0 || c.rope_scaling.type != RopeScaling::Type::kNone ||
      c.family == "phi3" || c.gemma)
    throw InputError(dir, "only plain llama and qwen2 models can be written (no q/k norms, "
                          "RoPE scaling, sliding window or fused projections)");
  if (dtype != "f32" && dtype != "bf16" && dtype != "f16")
    throw InputError("dtype", "expected f32, bf16 or f16, got '" + dtype + "'");
  const torch::Dtype td = dtype == "bf16"  ? torch::kBFloat16
                          : dtype == "f16" ? torch::kFloat16
                                           : torch::kFloat32;
  const DType sd = dtype == "bf16" ? DType::BF16 : dtype == "f16" ? DType::F16 : DType::F32;
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST)
    throw InputError(dir, errno_text("cannot create directory"));

  auto hf_name = [](const std::string& canon) -> std::string {
    static const std::pair<const char*, const char*> parts[] = {
        {".attn_norm.", ".input_layernorm."}, {".mlp_norm.", ".post_attention_layernorm."},
        {".q.", ".self_attn.q_proj."},        {".k.", ".self_attn.k_proj."},
        {".v.", ".self_attn.v_proj."},        {".o.", ".self_attn.o_proj."},
        {".gate.", ".mlp.gate_proj."},        {".up.", ".mlp.up_proj."},
        {".down.", ".mlp.down_proj."}};
    if (canon == "tok_embeddings") return "model.embed_tokens.weight";
    if (canon == "norm.weight") return "model.norm.weight";
    if (canon == "lm_head.weight") return canon;
    for (const auto& [from, to] : parts) {
      auto at = canon.find(from);
      if (at != std::string::npos)
        return "model." + canon.substr(0, at) + to + canon.substr(at + std::strlen(from));
    }
    return canon;
  };
  // Header first, then each tensor's bytes: one tensor in memory at a time.
  const auto tensors = expected_tensors(c);
  std::vector<SafetensorsStreamWriter::Spec> specs;
  for (const auto& [name, shape] : tensors) specs.push_back({hf_name(name), sd, shape});
  SafetensorsStreamWriter writer(dir + "/model.safetensors", std::move(specs), {{"format", "pt"}});
  for (const auto& [name, shape] : tensors) {
    auto t = tensor_of(name, shape).to(td).contiguous();
    writer.write_next(t.data_ptr(), size_t(t.numel() * t.element_size()));
  }
  writer.finish();

  json cfg = {{"architectures", {c.qkv_bias ? "Qwen2ForCausalLM" : "LlamaForCausalLM"}},
              {"model_type", c.qkv_bias ? "qwen2" : "llama"},
              {"hidden_size", c.dim},
              {"intermediate_size", c.ffn_dim},
              {"num_hidden_layers", c.n_layers},
              {"num_attention_heads", c.n_heads},
              {"num_key_value_heads", c.n_kv_heads},
              {"head_dim", c.head_dim},
              {"hidden_act", "silu"},
              {"rms_norm_eps", c.norm_eps},
              {"rope_theta", c.rope_theta},
              {"vocab_size", c.vocab_size},
              {"max_position_embeddings", c.max_seq_len},
              {"tie_word_embeddings", c.tie_embeddings},
              {"torch_dtype", dtype == "bf16" ? "bfloat16" : dtype == "f16" ? "float16" : "float32"}};
  std::ofstream out(dir + "/config.json");
  out << cfg.dump(2) << "\n";
  if (!out) throw InputError(dir + "/config.json", "write failed");
}

}  // namespace sparc
