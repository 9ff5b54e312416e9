// Model FLOPs of one training step (docs/benchmarks.md), the numerator of
// MFU. Matrix products only, each [m, k] x [k, n] counted as 2mnk:
//  - forward: every product;
//  - backward: 2mnk for the gradient of each operand that is on the path to
//    a trainable tensor (requires a gradient), and 2mnk for the weight
//    gradient of trainable weights only: frozen weights get none.
// Attention's Q K^T and P V count in full (causal masking not discounted);
// both of their operands are activations. Norms, RoPE, softmax and
// elementwise work are not counted.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "config/method.h"
#include "model/model_config.h"

namespace sparc {

struct StepShape {
  std::int64_t batch = 1;       // sequences per optimizer step
  std::int64_t positions = 1;   // per sequence, prompt included
  std::int64_t prompt_len = 0;  // P: soft-prompt positions (0: none)
  std::int64_t pca_k = 0;       // k: the sparc methods' prompt is Z [P, k] W [k, D] + mu
  std::int64_t classes = 2;     // the loss scores C class tokens at one position
  MethodId method = MethodId::kSparc;
  std::vector<std::string> lora_targets;  // projections with an adapter (lora methods)
  std::int64_t lora_rank = 0;
  std::int64_t prompt_products = 1;  // how often Z W runs per step (once per micro-batch)
};

struct StepFlops {
  double forward = 0;
  double backward = 0;
  double total() const { return forward + backward; }
};

StepFlops training_step_flops(const ModelConfig& model, const StepShape& shape);

}  // namespace sparc
