// Linear::forward: a frozen projection plus its optional LoRA adapter.
#include <torch/torch.h>

#include <vector>

#include "core/random.h"
#include "model/transformer.h"
#include "model/transformer_internal.h"

namespace sparc {

torch::Tensor Linear::forward(const torch::Tensor& x, const DropoutKeys* dropout) const {
  torch::Tensor y;
  const auto t = weight.scalar_type();
  if ((t == torch::kBFloat16 || t == torch::kFloat16) && !weight.requires_grad() &&
      x.scalar_type() == t) {
    // The transpose is cached per weight tensor and version (an in-place
    // update, as a restored `full` checkpoint makes, invalidates it).
    if (!weight_t.defined() || weight_t_of != weight.unsafeGetTensorImpl() ||
        weight_t_version != weight._version()) {
      torch::NoGradGuard no_grad;
      weight_t = weight.t().contiguous();
      weight_t_of = weight.unsafeGetTensorImpl();
      weight_t_version = weight._version();
    }
    y = model_detail::frozen_linear(x, weight, weight_t);
    if (bias.defined()) y = y + bias;
  } else {
    y = torch::linear(x, weight, bias.defined() ? bias : torch::Tensor());
  }
  if (!lora) return y;
  auto h = x.to(lora->a.scalar_type());
  if (dropout != nullptr && lora->dropout > 0) {
    // One generator per batch row, keyed by the row's global sample index.
    const double keep = 1.0 - lora->dropout;
    TORCH_CHECK(std::int64_t(dropout->sample_ids.size()) == h.size(0),
                "dropout keys for ", dropout->sample_ids.size(), " samples, batch has ", h.size(0));
    std::vector<torch::Tensor> masks;
    for (auto id : dropout->sample_ids) {
      auto gen = at::detail::createCPUGenerator(
          random_key({dropout->base, module_id, std::uint64_t(id)}));
      masks.push_back(at::bernoulli(torch::full(h.sizes().slice(1), keep), gen));
    }
    h = h * (torch::stack(masks).to(h.device(), h.scalar_type()) / keep);
  }
  auto delta = torch::linear(torch::linear(h, lora->a), lora->b) * lora->scale;
  return y + delta.to(y.scalar_type());
}

}  // namespace sparc
