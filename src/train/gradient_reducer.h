// Only trainable gradients cross the network (SPEC 3): every gradient of a
// step travels in one contiguous float32 buffer, one `grad` all-reduce per
// optimizer step. Used by `sparc train` (prompts, adapters, or every weight
// for `full`) and `sparc pretrain` (every weight).
#pragma once

#include <torch/torch.h>

#include <vector>

#include "train/ranks.h"

namespace sparc {

// Sums the gradients of `params` over the ranks, in place (a parameter
// without a gradient contributes zeros and receives the sum). A NaN or Inf
// on any rank shows in the sum on every rank.
void all_reduce_gradients(const Ranks& ranks, std::vector<torch::Tensor>& params);

// Whether every defined gradient of `params` is finite.
bool gradients_finite(const std::vector<torch::Tensor>& params);

}  // namespace sparc
