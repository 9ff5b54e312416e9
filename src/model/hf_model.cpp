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

namespace sparc {
namespace {

using nlohmann::json;

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

// A canonical tensor as stored: one safetensors tensor, or (gpt2's fused
// c_attn) a column range of one; Conv1D matrices are stored [in, out].
struct Stored {
  std::string name;
  bool transpose = false;
  std::int64_t part = -1;  // gpt2 c_attn: 0 = q, 1 = k, 2 = v
};

class HfDirectorySource : public WeightSource {
 public:
  explicit HfDirectorySource(const std::string& dir) : dir_(dir) {
    const std::string cfg_path = dir + "/config.json";
    if (!file_exists(cfg_path))
      throw InputError(dir, "no config.json: not a Hugging Face model directory");
    config_ = parse_hf_config(read_text_file(cfg_path), cfg_path);
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
    if (s.part >= 0) {
      // c_attn: [D, 3D] (Conv1D, in x out) or bias [3D]; take q, k or v.
      const std::int64_t width = t.size(-1) / 3;
      t = t.narrow(-1, s.part * width, width);
    }
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
    if (s.part >= 0 && !m.shape.empty()) m.shape.back() /= 3;
    if (s.transpose && m.shape.size() == 2) std::swap(m.shape[0], m.shape[1]);
    return m;
  }
  torch::Tensor load_elements(const std::string& name, std::int64_t first,
                              std::int64_t count) const override {
    if (!has(name) || names_.at(name).part >= 0 || names_.at(name).transpose)
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
    const bool gpt2 = config_.arch == Arch::kGpt2;
    const std::vector<std::string> pre =
        gpt2 ? std::vector<std::string>{"", "transformer."} : std::vector<std::string>{"model.", ""};
    auto map = [&](const std::string& canon, const std::string& stored, bool transpose = false,
                   std::int64_t part = -1) {
      names_[canon] = Stored{with_prefix(pre, stored), transpose, part};
    };
    if (gpt2) {
      map("tok_embeddings", "wte.weight");
      map("pos_embeddings", "wpe.weight");
      for (std::int64_t l = 0; l < config_.n_layers; ++l) {
        const std::string c = "layers." + std::to_string(l) + ".", h = "h." + std::to_string(l) + ".";
        for (const char* s : {"weight", "bias"}) {
          map(c + "attn_norm." + s, h + "ln_1." + s);
          map(c + "mlp_norm." + s, h + "ln_2." + s);
          const bool w = std::string(s) == "weight";
          map(c + "q." + s, h + "attn.c_attn." + s, w, 0);
          map(c + "k." + s, h + "attn.c_attn." + s, w, 1);
          map(c + "v." + s, h + "attn.c_attn." + s, w, 2);
          map(c + "o." + s, h + "attn.c_proj." + s, w);
          map(c + "up." + s, h + "mlp.c_fc." + s, w);
          map(c + "down." + s, h + "mlp.c_proj." + s, w);
        }
      }
      map("norm.weight", "ln_f.weight");
      map("norm.bias", "ln_f.bias");
      return;
    }
    map("tok_embeddings", "embed_tokens.weight");
    for (std::int64_t l = 0; l < config_.n_layers; ++l) {
      const std::string c = "layers." + std::to_string(l) + ".", h = c;
      map(c + "attn_norm.weight", h + "input_layernorm.weight");
      map(c + "mlp_norm.weight", h + "post_attention_layernorm.weight");
      for (const char* s : {"weight", "bias"}) {
        map(c + "q." + s, h + "self_attn.q_proj." + s);
        map(c + "k." + s, h + "self_attn.k_proj." + s);
        map(c + "v." + s, h + "self_attn.v_proj." + s);
      }
      map(c + "o.weight", h + "self_attn.o_proj.weight");
      map(c + "gate.weight", h + "mlp.gate_proj.weight");
      map(c + "up.weight", h + "mlp.up_proj.weight");
      map(c + "down.weight", h + "mlp.down_proj.weight");
    }
    map("norm.weight", "norm.weight");
    names_["lm_head.weight"] = Stored{"lm_head.weight"};
  }

  std::string dir_;
  ModelConfig config_;
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
  ModelConfig c;
  if (type == "gpt2") {
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
    if (j.contains("activation_function") && j["activation_function"] != "gelu_new")
      throw InputError(where, "activation_function " + j["activation_function"].dump() +
                                  " is not supported, expected \"gelu_new\"");
  } else if (type == "llama" || type == "mistral" || type == "qwen2") {
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
    c.rope_theta = get_double_or(j, "rope_theta", 10000.0, where);
    c.tie_embeddings = get_bool_or(j, "tie_word_embeddings", false, where);
    c.qkv_bias = type == "qwen2";
    if (get_bool_or(j, "attention_bias", false, where))
      throw InputError(where, "attention_bias = true (a bias on o_proj too) is not supported");
    if (j.contains("hidden_act") && j["hidden_act"] != "silu")
      throw InputError(where, "hidden_act " + j["hidden_act"].dump() +
                                  " is not supported, expected \"silu\"");
    if (j.contains("rope_scaling") && !j["rope_scaling"].is_null())
      throw InputError(where, "rope_scaling " + j["rope_scaling"].dump() +
                                  " is not supported; only plain RoPE is");
  } else {
    throw InputError(where, "unknown model_type '" + type +
                                "', expected one of llama, mistral, qwen2 (llama family) or gpt2");
  }
  c.validate(where);
  return c;
}

std::unique_ptr<WeightSource> open_hf_directory(const std::string& dir) {
  return std::make_unique<HfDirectorySource>(dir);
}

void write_hf_llama_directory(const WeightSource& source, const std::string& dir,
                              const std::string& dtype) {
  const ModelConfig& c = source.config();
  if (c.arch != Arch::kLlama) throw InputError(dir, "only llama models can be written");
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST)
    throw InputError(dir, errno_text("cannot create directory"));
  torch::Dtype td = dtype == "bf16" ? torch::kBFloat16
                    : dtype == "f16" ? torch::kFloat16
                                     : torch::kFloat32;
  DType sd = dtype == "bf16" ? DType::BF16 : dtype == "f16" ? DType::F16 : DType::F32;
  if (dtype != "f32" && dtype != "bf16" && dtype != "f16")
    throw InputError("dtype", "expected f32, bf16 or f16, got '" + dtype + "'");

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
  SafetensorsWriter writer;
  for (const auto& [name, shape] : expected_tensors(c)) {
    auto t = source.load(name).to(td).contiguous();
    writer.add(hf_name(name), sd, shape, t.data_ptr(), t.numel() * t.element_size());
  }
  writer.set_metadata("format", "pt");
  writer.write(dir + "/model.safetensors");

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
