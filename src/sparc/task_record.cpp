#include "sparc/task_record.h"

namespace sparc {

LoraSet adopt_lora(const LoraSet& saved, const torch::Device& device, double scale,
                   double dropout, bool trainable) {
  LoraSet out;
  for (const auto& [site, l] : saved) {
    auto a = std::make_shared<LoraAdapter>();
    a->a = l->a.to(device).clone();
    a->b = l->b.to(device).clone();
    if (trainable) a->a.requires_grad_(true), a->b.requires_grad_(true);
    a->scale = scale;
    a->dropout = dropout;
    out[site] = a;
  }
  return out;
}

}  // namespace sparc
