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

// Modules that hold several canonical projections: gpt2's c_attn and phi3's
// qkv_proj (rows [q; k; v]), phi3's gate_up_proj (rows [gate; up]).
struct FusedModule {
  std::string target;                // the fused site's name: "qkv" or "gate_up"
  std::vector<std::string> parts;    // canonical targets, in row order
  std::vector<std::int64_t> rows;    // rows of each part (0: from an adapter's B)
};

std::vector<FusedModule> fused_modules(const TrainingState& st) {
  if (st.arch == "gpt2") return {{"qkv", {"q", "k", "v"}, {st.dim, st.dim, st.dim}}};
  if (st.arch == "phi3") {
    const std::int64_t hd = st.dim / st.n_heads;  // Phi-3 configs carry no head_dim of their own
    return {{"qkv", {"q", "k", "v"}, {st.n_heads * hd, st.n_kv_heads * hd, st.n_kv_heads * hd}},
            {"gate_up", {"gate", "up"}, {0, 0}}};  // intermediate size: B's rows
  }
  return {};
}

// Separate adapters on the parts of a fused module become one adapter on it
// of rank n * r (A stacked, B block-diagonal into the parts' row ranges),
// with alpha scaled by n so the scale alpha / r is unchanged. `fused_count`
// gets n per fused target.
void fuse_adapters(const LoraSet& lora, const std::vector<FusedModule>& modules, LoraSet& out,
                   std::map<std::string, std::int64_t>& fused_count) {
  std::map<std::string, std::map<std::string, const LoraAdapter*>> by_site;  // fused site -> part -> adapter
  for (const auto& [site, ad] : lora) {
    const auto dot = site.find_last_of('.');
    const std::string target = site.substr(dot + 1);
    const FusedModule* owner = nullptr;
    for (const auto& m : modules)
      for (const auto& p : m.parts)
        if (p == target) owner = &m;
    if (!owner) out[site] = ad;
    else by_site[site.substr(0, dot) + "." + owner->target][target] = ad.get();
  }
  for (auto& [site, parts] : by_site) {
    const std::string target = site.substr(site.find_last_of('.') + 1);
    const FusedModule& m = *std::find_if(modules.begin(), modules.end(),
                                         [&](const FusedModule& f) { return f.target == target; });
    const std::int64_t r = parts.begin()->second->a.size(0), n = std::int64_t(parts.size());
    std::vector<std::int64_t> rows = m.rows;
    for (auto& rw : rows)
      if (rw == 0) rw = parts.begin()->second->b.size(0);
    std::int64_t total = 0;
    for (auto rw : rows) total += rw;
    std::vector<torch::Tensor> as;
    auto b = torch::zeros({total, n * r}, torch::kFloat32);
    std::int64_t row0 = 0, i = 0;
    for (size_t p = 0; p < m.parts.size(); ++p) {
      auto it = parts.find(m.parts[p]);
      if (it != parts.end()) {
        as.push_back(it->second->a.to(torch::kFloat32));
        b.slice(0, row0, row0 + rows[p]).slice(1, i * r, (i + 1) * r).copy_(it->second->b);
        ++i;
      }
      row0 += rows[p];
    }
    auto fused = std::make_shared<LoraAdapter>();
    fused->a = torch::cat(as, 0);
    fused->b = b;
    out[site] = fused;
    fused_count[target] = n;
  }
}

std::string write_lora(const TrainingState& st, const LoraSet& adapters,
                       const std::string& dir) {
  const YAML::Node config = YAML::Load(st.config_yaml);
  const auto l = config["lora"];
  const double alpha = l["alpha"].as<double>();
  LoraSet lora;
  std::map<std::string, std::int64_t> fused;  // fused target -> parts adapted
  fuse_adapters(adapters, fused_modules(st), lora, fused);
  SafetensorsWriter w;
  std::set<std::string> targets;
  std::int64_t r = 0;
  for (const auto& [site, ad] : lora) {
    const std::string path = hf_module_path(st.arch, site);
    add_f32(w, "base_model.model." + path + ".lora_A.weight", ad->a);
    add_f32(w, "base_model.model." + path + ".lora_B.weight", ad->b);
    targets.insert(leaf(path));
    const std::string target = site.substr(site.find_last_of('.') + 1);
    r = fused.count(target) ? ad->a.size(0) / fused.at(target) : ad->a.size(0);
  }
  make_directories(dir);
  w.set_metadata("format", "pt");
  w.write(dir + "/adapter_model.safetensors");
  nlohmann::json rank_pattern = nlohmann::json::object(), alpha_pattern = nlohmann::json::object();
  for (const auto& [target, n] : fused) {
    if (n <= 1) continue;
    const std::string module = leaf(hf_module_path(st.arch, "layers.0." + target));
    rank_pattern[module] = r * n;
    alpha_pattern[module] = alpha * double(n);
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
  if (arch == "llama" || arch == "gemma3_multimodal") {
    // Gemma3ForConditionalGeneration (transformers 4.52 on) holds its text
    // layers under model.language_model.
    const std::string layers = arch == "llama" ? "model.layers." : "model.language_model.layers.";
    if (target == "q" || target == "k" || target == "v" || target == "o")
      return layers + index + ".self_attn." + target + "_proj";
    return layers + index + ".mlp." + target + "_proj";
  }
  if (arch == "gpt2") {
    if (target == "qkv") return "transformer.h." + index + ".attn.c_attn";  // fused q, k, v
    if (target == "o") return "transformer.h." + index + ".attn.c_proj";
    if (target == "up") return "transformer.h." + index + ".mlp.c_fc";
    if (target == "down") return "transformer.h." + index + ".mlp.c_proj";
    throw InputError(site, "gpt2 has no separate '" + target +
                               "' module (q, k and v are exported fused, as c_attn)");
  }
  if (arch == "phi3") {  // q, k, v fused in qkv_proj; gate and up in gate_up_proj
    if (target == "qkv" || target == "o")
      return "model.layers." + index + ".self_attn." + target + "_proj";
    if (target == "gate_up" || target == "down")
      return "model.layers." + index + ".mlp." + target + "_proj";
    throw InputError(site, "phi3 has no separate '" + target +
                               "' module (q, k, v and gate, up are exported fused)");
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
