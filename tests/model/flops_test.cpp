// training_step_flops against products counted by hand for a tiny llama:
// D=4, 1 layer, 2 heads of 2, FFN 6, one sequence of 3 positions, 2 classes.
#include "model/flops.h"

#include <gtest/gtest.h>

namespace sparc {
namespace {

ModelConfig tiny() {
  ModelConfig c;
  c.arch = Arch::kLlama;
  c.vocab_size = 16;
  c.dim = 4;
  c.n_layers = 1;
  c.n_heads = 2;
  c.n_kv_heads = 2;
  c.head_dim = 2;
  c.ffn_dim = 6;
  return c;
}

StepShape shape(MethodId method) {
  StepShape s;
  s.batch = 1;
  s.positions = 3;
  s.classes = 2;
  s.method = method;
  return s;
}

// Per layer, M = 3 rows: q, k, v, o are 2*3*4*4 = 96 each; gate, up, down
// 2*3*4*6 = 144 each. Q K^T: 2 * (1*2*3) * 3 * 2 = 72; P V: 2 * 6 * 2 * 3 = 72.
// The loss: 2 * 1 * 2 * 4 = 16.

TEST(StepFlops, SparcPromptNeedsInputGradientsOnlyFrozenWeightsGetNone) {
  auto s = shape(MethodId::kSparc);
  s.prompt_len = 1;
  s.pca_k = 2;
  const auto f = training_step_flops(tiny(), s);
  // Z W: 2*1*4*2 = 16, and 16 more for Z's gradient.
  EXPECT_DOUBLE_EQ(f.forward, 16 + 4 * 96 + 3 * 144 + 72 + 72 + 16);  // 992
  // Every product once more for its input; attention twice (both operands).
  EXPECT_DOUBLE_EQ(f.backward, 16 + 4 * 96 + 3 * 144 + 2 * 72 + 2 * 72 + 16);  // 1136
}

TEST(StepFlops, LoraAloneSkipsGradientsBeforeTheFirstAdapter) {
  auto s = shape(MethodId::kLora);
  s.lora_targets = {"q"};
  s.lora_rank = 1;
  const auto f = training_step_flops(tiny(), s);
  // Adapter on q: x A^T 2*3*1*4 = 24, (x A^T) B^T 2*3*4*1 = 24.
  EXPECT_DOUBLE_EQ(f.forward, 4 * 96 + 24 + 24 + 72 + 72 + 3 * 144 + 16);  // 1024
  // q, k, v: no input gradient (the embeddings need none) and frozen
  // weights; A: weight gradient only (24); B: input and weight (48); Q K^T
  // and P V: only the query side (72 each); then o and the MLP: input
  // gradients; the loss: input gradient.
  EXPECT_DOUBLE_EQ(f.backward, 24 + 48 + 72 + 72 + 96 + 3 * 144 + 16);  // 760
}

TEST(StepFlops, FullFineTuningAddsEveryWeightGradient) {
  const auto f = training_step_flops(tiny(), shape(MethodId::kFull));
  EXPECT_DOUBLE_EQ(f.forward, 4 * 96 + 3 * 144 + 72 + 72 + 16);
  EXPECT_DOUBLE_EQ(f.backward, 2 * (4 * 96 + 3 * 144) + 2 * 72 + 2 * 72 + 2 * 16);
}

TEST(StepFlops, GroupedQueryAttentionAndBatchScale) {
  auto c = tiny();
  c.n_kv_heads = 1;  // k, v: [4 -> 2]: 2*3*4*2 = 48 each per sequence
  auto s = shape(MethodId::kPrompt);
  s.prompt_len = 1;  // a plain prompt: no product of its own
  s.batch = 2;
  const auto f = training_step_flops(c, s);
  EXPECT_DOUBLE_EQ(f.forward, 2 * (2 * 96 + 2 * 48 + 3 * 144 + 72 + 72 + 16));
}

}  // namespace
}  // namespace sparc
