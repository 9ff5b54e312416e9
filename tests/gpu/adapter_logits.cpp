// sparc's logits for a few token ids, on a chosen device and dtype, with an
// optional PEFT adapter directory as `sparc export-peft` writes it (prompt
// tuning: prompt_embeddings as a prefix; LoRA: lora_A/lora_B on the named
// projections, scale lora_alpha / r). tests/gpu/run.sh compares its output
// across devices and dtypes, and against Hugging Face peft + transformers.
//
//   adapter_logits MODEL_DIR ADAPTER_DIR|none DEVICE DTYPE ID...
//
// Prints one JSON object: {"shape": [1, P + T, V], "logits": [...]} (f32).
#include <torch/torch.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.h"
#include "formats/safetensors.h"
#include "model/model_loader.h"
#include "model/transformer.h"

namespace {

using namespace sparc;

torch::Tensor read_f32(const SafetensorsReader& r, const std::string& name) {
  const TensorInfo& info = r.info(name);
  if (info.dtype != DType::F32) throw InputError(r.path(), name + ": expected F32");
  torch::Tensor t = torch::empty(info.shape, torch::kFloat32);
  r.read(name, t.data_ptr());
  return t;
}

// "base_model.model.model.layers.3.self_attn.q_proj.lora_A.weight" -> (3, "q", "A")
bool parse_lora_name(const std::string& name, int* layer, std::string* target, std::string* ab) {
  const std::string prefix = "base_model.model.model.layers.";
  if (name.rfind(prefix, 0) != 0) return false;
  std::size_t pos = prefix.size();
  const std::size_t dot = name.find('.', pos);
  *layer = std::stoi(name.substr(pos, dot - pos));
  const std::size_t proj = name.find("_proj.lora_", dot);
  if (proj == std::string::npos) return false;
  *target = name.substr(name.rfind('.', proj) + 1, proj - name.rfind('.', proj) - 1);
  *ab = name.substr(proj + 11, 1);
  return true;
}

Linear& site(Block& b, const std::string& target) {
  static const std::map<std::string, Linear Block::*> sites = {
      {"q", &Block::q},       {"k", &Block::k},   {"v", &Block::v},    {"o", &Block::o},
      {"gate", &Block::gate}, {"up", &Block::up}, {"down", &Block::down}};
  auto it = sites.find(target);
  if (it == sites.end()) throw InputError(target, "not a llama projection");
  return b.*(it->second);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 6) {
    std::fprintf(stderr, "usage: adapter_logits MODEL_DIR ADAPTER_DIR|none DEVICE DTYPE ID...\n");
    return 2;
  }
  try {
    torch::NoGradGuard no_grad;
    const std::string model_dir = argv[1], adapter_dir = argv[2];
    ModelOptions options;
    options.device = parse_model_device(argv[3], "DEVICE");
    options.dtype = parse_model_dtype(argv[4], "DTYPE");
    std::vector<std::int64_t> ids;
    for (int i = 5; i < argc; ++i) ids.push_back(std::stoll(argv[i]));
    auto source = open_model(model_dir);
    Transformer model(*source, options);

    torch::Tensor prefix;
    if (adapter_dir != "none") {
      std::ifstream cfg_file(adapter_dir + "/adapter_config.json");
      if (!cfg_file) throw InputError(adapter_dir, "no adapter_config.json");
      const auto cfg = nlohmann::json::parse(cfg_file);
      SafetensorsReader reader(adapter_dir + "/adapter_model.safetensors");
      const std::string type = cfg.at("peft_type");
      if (type == "PROMPT_TUNING") {
        prefix = read_f32(reader, "prompt_embeddings").to(options.device).to(options.dtype);
      } else if (type == "LORA") {
        const double scale = cfg.at("lora_alpha").get<double>() / cfg.at("r").get<double>();
        std::map<std::pair<int, std::string>, std::shared_ptr<LoraAdapter>> adapters;
        for (const TensorInfo& info : reader.tensors()) {
          int layer = 0;
          std::string target, ab;
          if (!parse_lora_name(info.name, &layer, &target, &ab))
            throw InputError(info.name, "not a llama LoRA tensor name");
          auto& ad = adapters[{layer, target}];
          if (!ad) ad = std::make_shared<LoraAdapter>();
          (ab == "A" ? ad->a : ad->b) = read_f32(reader, info.name).to(options.device);
          ad->scale = scale;
        }
        for (auto& [key, ad] : adapters)
          site(model.blocks().at(key.first), key.second).lora = ad;
      } else {
        throw InputError(adapter_dir, "peft_type " + type + " is not handled");
      }
    }
    torch::Tensor tokens = torch::tensor(ids, torch::kLong).unsqueeze(0).to(options.device);
    torch::Tensor logits = model.forward(tokens, prefix).to(torch::kFloat32).cpu().contiguous();
    nlohmann::json out;
    out["shape"] = logits.sizes().vec();
    out["logits"] = std::vector<float>(logits.data_ptr<float>(),
                                       logits.data_ptr<float>() + logits.numel());
    std::cout << out.dump() << "\n";
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "adapter_logits: %s\n", e.what());
    return 1;
  }
}
