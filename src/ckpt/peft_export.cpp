#include "ckpt/peft_export.h"

#include <yaml-cpp/yaml.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "core/error.h"
#include "core/file.h"
#include "formats/safetensors.h"

namespace sparc {
namespace {

void add_f32(SafetensorsWriter& w, const std::string& name, const torch::Tensor& t) {
  auto c = t.detach().to(torch::kCPU, torch::kFloat32).contiguous();
  w.add(name, DType::F32, c.sizes().vec(), c.data_ptr(), size_t(c.numel()) * sizeof(float));
}

void write_json(const std::string& path, const nlohmann::json& j) {
  std::ofstream out(path);
  out << j.dump(2) << "\n";
  if (!out) throw InputError(path, "write failed");
}

// "q_proj" for llama's q: the leaf name PEFT's target_modules matches.
std::string leaf(const std::string& module_path) {
  return module_path.substr(module_path.find_last_of('.') + 1);
}

std::string write_prompt(const TrainingState& st, const torch::Tensor& prompt, const std::string& dir) {
  make_directories(dir);
  SafetensorsWriter w;
  add_f32(w, "prompt_embeddings", prompt);
  w.set_metadata("format", "pt");
  w.write(dir + "/adapter_model.safetensors");
  nlohmann::json cfg = {
      {"peft_type", "PROMPT_TUNING"},
      {"task_type", "CAUSAL_LM"},
      {"num_virtual_tokens", prompt.size(0)},
      {"token_dim", prompt.size(1)},
      {"num_transformer_submodules", 1},
      {"num_attention_heads", st.n_heads},
      {"num_layers", st.n_layers},
      {"prompt_tuning_init", "RANDOM"},
      {"prompt_tuning_init_text", nullptr},
      {"tokenizer_name_or_path", nullptr},
      {"tokenizer_kwargs", nullptr},
      {"base_model_name_or_path", st.model_path},
      {"revision", nullptr},
      {"inference_mode", true},
      {"auto_mapping", nullptr},
  };
  write_json(dir + "/adapter_config.json", cfg);
  return dir;
}

std::string write_lora(const TrainingState& st, const std::map<std::string, CkptLora>& lora,
                       const std::string& dir) {
  const YAML::Node config = YAML::Load(st.config_yaml);
  const auto l = config["lora"];
  SafetensorsWriter w;
  std::set<std::string> targets;
  std::int64_t r = 0;
  for (const auto& [site, ad] : lora) {
    const std::string path = hf_module_path(st.arch, site);
    add_f32(w, "base_model.model." + path + ".lora_A.weight", ad.a);
    add_f32(w, "base_model.model." + path + ".lora_B.weight", ad.b);
    targets.insert(leaf(path));
    r = ad.a.size(0);
  }
  make_directories(dir);
  w.set_metadata("format", "pt");
  w.write(dir + "/adapter_model.safetensors");
  nlohmann::json cfg = {
      {"peft_type", "LORA"},
      {"task_type", "CAUSAL_LM"},
      {"r", r},
      {"lora_alpha", l["alpha"].as<double>()},
      {"lora_dropout", l["dropout"].as<double>()},
      {"target_modules", std::vector<std::string>(targets.begin(), targets.end())},
      {"bias", "none"},
      {"fan_in_fan_out", false},
      {"modules_to_save", nullptr},
      {"init_lora_weights", true},
      {"layers_to_transform", nullptr},
      {"layers_pattern", nullptr},
      {"rank_pattern", nlohmann::json::object()},
      {"alpha_pattern", nlohmann::json::object()},
      {"base_model_name_or_path", st.model_path},
      {"revision", nullptr},
      {"inference_mode", true},
      {"auto_mapping", nullptr},
  };
  write_json(dir + "/adapter_config.json", cfg);
  return dir;
}

}  // namespace

std::string hf_module_path(const std::string& arch, const std::string& site) {
  // site: layers.<i>.<target>
  const auto dot = site.find_last_of('.');
  const std::string layer = site.substr(0, dot), target = site.substr(dot + 1);
  const std::string index = layer.substr(layer.find('.') + 1);
  if (arch == "llama") {
    if (target == "q" || target == "k" || target == "v" || target == "o")
      return "model.layers." + index + ".self_attn." + target + "_proj";
    return "model.layers." + index + ".mlp." + target + "_proj";
  }
  if (arch == "gpt2") {
    if (target == "o") return "transformer.h." + index + ".attn.c_proj";
    if (target == "up") return "transformer.h." + index + ".mlp.c_fc";
    if (target == "down") return "transformer.h." + index + ".mlp.c_proj";
    throw InputError(site, "gpt2 fuses q, k and v into one c_attn projection: its separate '" +
                               target + "' adapters have no PEFT module to attach to");
  }
  throw InputError(site, "no Hugging Face module names known for architecture '" + arch + "'");
}

std::vector<std::string> export_peft(const TrainingState& st, const std::string& task,
                                     const std::string& out_dir) {
  const CkptTask* entry = nullptr;
  std::string trained;
  for (const auto& t : st.library) {
    if (t.name == task) entry = &t;
    trained += (trained.empty() ? "" : ", ") + t.name;
  }
  if (!entry)
    throw InputError(task, "no finished task of that name in the checkpoint (finished: " +
                               (trained.empty() ? std::string("none") : trained) + ")");
  std::vector<std::string> written;
  if (st.method == "sparc" || st.method == "prompt") {
    written.push_back(write_prompt(st, entry->prompt, out_dir));
  } else if (st.method == "sparc+lora") {
    written.push_back(write_prompt(st, entry->prompt, out_dir + "/prompt"));
    written.push_back(write_lora(st, entry->lora, out_dir + "/lora"));
  } else if (st.method == "lora") {
    // One adapter set trained through the sequence: the checkpoint's current one.
    written.push_back(write_lora(st, st.shared_lora, out_dir));
  } else {
    throw InputError(task, "method '" + st.method +
                               "' trains the model's own weights: there is no adapter to export");
  }
  return written;
}

}  // namespace sparc
