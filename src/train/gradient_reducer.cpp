#include "train/gradient_reducer.h"

namespace sparc {

void all_reduce_gradients(const Ranks& ranks, std::vector<torch::Tensor>& params) {
  if (ranks.world() == 1 || params.empty()) return;
  // One flat f32 buffer on the first parameter's device (prompt
  // coefficients and adapters may live on different devices).
  std::vector<torch::Tensor> parts;
  const auto f32 = torch::TensorOptions(torch::kFloat32).device(params.front().device());
  for (auto& p : params)
    parts.push_back(p.grad().defined() ? p.grad().reshape(-1).to(f32) : torch::zeros({p.numel()}, f32));
  auto flat = torch::cat(parts);
  ranks.comm->all_reduce(flat, ReduceOp::kSum, CommTag::kGrad);
  std::int64_t offset = 0;
  torch::NoGradGuard no_grad;
  for (auto& p : params) {
    auto g = flat.slice(0, offset, offset + p.numel()).view_as(p).to(p.options());
    if (p.grad().defined()) p.mutable_grad().copy_(g);
    else p.mutable_grad() = g.clone();
    offset += p.numel();
  }
}

bool gradients_finite(const std::vector<torch::Tensor>& params) {
  for (const auto& p : params)
    if (p.grad().defined() && !torch::isfinite(p.grad()).all().item<bool>()) return false;
  return true;
}

}  // namespace sparc
