#include "ckpt/peft_export.h"

#include <yaml-cpp/yaml.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <algorithm>
#include <set>

#include "config/method.h"
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

// gpt2 computes q, k and v with one Conv1D (c_attn, output [q; k; v], D
// rows each): its separate adapters become one adapter on c_attn of rank
// n * r (A stacked, B block-diagonal into the q/k/v row ranges), with alpha
// scaled by n so the scale alpha / r is unchanged.
void fuse_gpt2_qkv(const LoraSet& lora, std::int64_t dim, LoraSet& out,
                   std::int64_t& fused_count) {
  std::map<std::string, std::vector<std::pair<int, const LoraAdapter*>>> by_layer;
  for (const auto& [site, ad] : lora) {
    const auto dot = site.find_last_of('.');
    const std::string target = site.substr(dot + 1);
    const int part = target == "q" ? 0 : target == "k" ? 1 : target == "v" ? 2 : -1;
    if (part < 0) out[site] = ad;
    else by_layer[site.substr(0, dot)].emplace_back(part, ad.get());
  }
  for (auto& [layer, parts] : by_layer) {
    std::sort(parts.begin(), parts.end());
    const std::int64_t r = parts[0].second->a.size(0), n = std::int64_t(parts.size());
    std::vector<torch::Tensor> as;
    auto b = torch::zeros({3 * dim, n * r}, torch::kFloat32);
    for (std::int64_t i = 0; i < n; ++i) {
      as.push_back(parts[i].second->a.to(torch::kFloat32));
      b.slice(0, parts[i].first * dim, (parts[i].first + 1) * dim).slice(1, i * r, (i + 1) * r)
          .copy_(parts[i].second->b);
    }
    auto fused = std::make_shared<LoraAdapter>();
    fused->a = torch::cat(as, 0);
    fused->b = b;
    out[layer + ".qkv"] = fused;
    fused_count = n;
  }
}

std::string write_lora(const TrainingState& st, const LoraSet& adapters,
                       const std::string& dir) {
  const YAML::Node config = YAML::Load(st.config_yaml);
  const auto l = config["lora"];
  const double alpha = l["alpha"].as<double>();
  LoraSet lora = adapters;
  std::int64_t fused = 0;
  if (st.arch == "gpt2") {
    lora.clear();
    fuse_gpt2_qkv(adapters, st.dim, lora, fused);
  }
  SafetensorsWriter w;
  std::set<std::string> targets;
  std::int64_t r = 0;
  for (const auto& [site, ad] : lora) {
    const std::string path = hf_module_path(st.arch, site);
    add_f32(w, "base_model.model." + path + ".lora_A.weight", ad->a);
    add_f32(w, "base_model.model." + path + ".lora_B.weight", ad->b);
    targets.insert(leaf(path));
    if (leaf(path) != "c_attn") r = ad->a.size(0);
  }
  if (r == 0 && fused > 0) r = lora.begin()->second->a.size(0) / fused;
  make_directories(dir);
  w.set_metadata("format", "pt");
  w.write(dir + "/adapter_model.safetensors");
  nlohmann::json rank_pattern = nlohmann::json::object(), alpha_pattern = nlohmann::json::object();
  if (fused > 1) {
    rank_pattern["c_attn"] = r * fused;
    alpha_pattern["c_attn"] = alpha * double(fused);
  }
  nlohmann::json cfg = {
      {"peft_type", "LORA"},
      {"task_type", "CAUSAL_LM"},
      {"r", r},
      {"lora_alpha", alpha},
      {"lora_dropout", l["dropout"].as<double>()},
      {"target_modules", std::vector<std::string>(targets.begin(), targets.end())},
      {"bias", "none"},
      {"fan_in_fan_out", st.arch == "gpt2"},  // gpt2's Conv1D stores [in, out]
      {"modules_to_save", nullptr},
      {"init_lora_weights", true},
      {"layers_to_transform", nullptr},
      {"layers_pattern", nullptr},
      {"rank_pattern", rank_pattern},
      {"alpha_pattern", alpha_pattern},
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
    if (target == "qkv") return "transformer.h." + index + ".attn.c_attn";  // fused q, k, v
    if (target == "o") return "transformer.h." + index + ".attn.c_proj";
    if (target == "up") return "transformer.h." + index + ".mlp.c_fc";
    if (target == "down") return "transformer.h." + index + ".mlp.c_proj";
    throw InputError(site, "gpt2 has no separate '" + target +
                               "' module (q, k and v are exported fused, as c_attn)");
  }
  throw InputError(site, "no Hugging Face module names known for architecture '" + arch + "'");
}

std::vector<std::string> export_peft(const TrainingState& st, const std::string& task,
                                     const std::string& out_dir) {
  const TaskRecord* entry = nullptr;
  std::string trained;
  for (const auto& t : st.library) {
    if (t.name == task) entry = &t;
    trained += (trained.empty() ? "" : ", ") + t.name;
  }
  if (!entry)
    throw InputError(task, "no finished task of that name in the checkpoint (finished: " +
                               (trained.empty() ? std::string("none") : trained) + ")");
  std::vector<std::string> written;
  MethodId method;
  if (!parse_method_name(st.method, &method))
    throw InputError(task, "unknown method '" + st.method + "' in the checkpoint (known: " +
                               method_names_list() + ")");
  const MethodTraits& traits = method_traits(method);
  // PEFT applies one adapter type per model: a prompt and per-task LoRA go
  // into two adapters.
  const bool prompt = traits.prompt != PromptKind::kNone;
  const bool both = prompt && traits.lora == LoraKind::kPerTask;
  if (prompt) written.push_back(write_prompt(st, entry->prompt, both ? out_dir + "/prompt" : out_dir));
  if (traits.lora == LoraKind::kPerTask)
    written.push_back(write_lora(st, entry->lora, both ? out_dir + "/lora" : out_dir));
  if (traits.lora == LoraKind::kShared)  // one adapter set trained through the sequence
    written.push_back(write_lora(st, st.shared_lora, out_dir));
  if (written.empty())
    throw InputError(task, "method '" + st.method +
                               "' trains the model's own weights: there is no adapter to export");
  return written;
}

}  // namespace sparc
