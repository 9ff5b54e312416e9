#include "sparc/lora_sites.h"

#include <cmath>

#include "core/random.h"
#include "sparc/random_streams.h"

namespace sparc {

Linear& lora_site(Block& b, const std::string& target) {
  if (target == "q") return b.q;
  if (target == "k") return b.k;
  if (target == "v") return b.v;
  if (target == "o") return b.o;
  if (target == "gate") return b.gate;
  if (target == "up") return b.up;
  return b.down;
}

LoraSet fresh_lora(Transformer& model, const LoraSection& lora, std::uint64_t seed,
                   std::uint64_t task) {
  LoraSet out;
  const int r = lora.rank;
  for (size_t l = 0; l < model.blocks().size(); ++l)
    for (const auto& t : lora.targets) {
      Linear& lin = lora_site(model.blocks()[l], t);
      const auto out_dim = lin.out_features, in_dim = lin.in_features;
      auto gen = at::detail::createCPUGenerator(random_key({seed, task, kLoraStream, lin.module_id}));
      auto a = at::rand({r, in_dim}, gen).mul_(2).sub_(1).mul_(1.0 / std::sqrt(double(in_dim)));
      auto adapter = std::make_shared<LoraAdapter>();
      adapter->a = a.to(model.device()).requires_grad_(true);
      adapter->b = torch::zeros({out_dim, r}, torch::device(model.device())).requires_grad_(true);
      adapter->scale = lora.alpha / r;
      adapter->dropout = lora.dropout;
      out["layers." + std::to_string(l) + "." + t] = adapter;
    }
  return out;
}

void install_lora(Transformer& model, const LoraSet& adapters) {
  for (size_t l = 0; l < model.blocks().size(); ++l)
    for (const char* t : {"q", "k", "v", "o", "gate", "up", "down"}) {
      auto it = adapters.find("layers." + std::to_string(l) + "." + t);
      lora_site(model.blocks()[l], t).lora = it == adapters.end() ? nullptr : it->second;
    }
}

std::int64_t lora_parameter_count(Transformer& model, const LoraSection& lora) {
  std::int64_t n = 0;
  for (auto& b : model.blocks())
    for (const auto& t : lora.targets) {
      const auto& lin = lora_site(b, t);
      n += lora.rank * (lin.out_features + lin.in_features);
    }
  return n;
}

}  // namespace sparc
