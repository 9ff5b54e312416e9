// model.recompute on one process: blocks that re-run their forward in
// backward give the same logits and the same gradient bits as blocks that
// keep their activations (plain autograd, `never`), in every mode, with LoRA
// dropout on; auto's budget decides which blocks recompute.
#include <gtest/gtest.h>

#include "model/transformer.h"
#include "model/weight_source.h"

namespace sparc {
namespace {

ModelConfig config() {
  ModelConfig c;
  c.arch = Arch::kLlama;
  c.vocab_size = 50, c.dim = 16, c.n_layers = 3, c.n_heads = 4, c.n_kv_heads = 2;
  c.head_dim = 4, c.ffn_dim = 24, c.max_seq_len = 32;
  return c;
}

struct Grads {
  torch::Tensor logits, prefix;
  std::vector<torch::Tensor> lora;
};

Grads run(ModelOptions::Recompute mode, std::int64_t budget) {
  auto src = random_weights(config(), 3);
  for (auto& [name, t] : src->tensors())
    if (name.find("norm") == std::string::npos) t.mul_(5.0);  // every layer matters
  ModelOptions opt;
  opt.recompute = mode;
  opt.activation_budget_bytes = budget;
  Transformer m(*src, opt);
  auto gen = at::detail::createCPUGenerator(9);
  std::vector<std::shared_ptr<LoraAdapter>> lora;
  for (auto& b : m.blocks())
    for (Linear* lin : {&b.q, &b.down}) {
      auto a = std::make_shared<LoraAdapter>();
      a->a = at::randn({2, lin->in_features}, gen).requires_grad_(true);
      a->b = at::randn({lin->out_features, 2}, gen).mul_(0.1).requires_grad_(true);
      a->dropout = 0.3;
      lin->lora = a;
      lora.push_back(a);
    }
  auto tokens = at::randint(50, {2, 6}, gen);
  auto prefix = at::randn({2, 16}, gen).requires_grad_(true);
  auto w = at::randn({2, 8, 50}, gen);
  DropoutKeys keys{7, {0, 1}};
  m.set_dropout(&keys);
  Grads g;
  g.logits = m.forward(tokens, prefix);
  (g.logits * w).sum().backward();
  g.prefix = prefix.grad();
  for (auto& a : lora) g.lora.push_back(a->a.grad()), g.lora.push_back(a->b.grad());
  return g;
}

void expect_same_bits(const Grads& a, const Grads& b) {
  EXPECT_TRUE(torch::equal(a.logits, b.logits));
  ASSERT_TRUE(a.prefix.defined() && b.prefix.defined());
  EXPECT_TRUE(torch::equal(a.prefix, b.prefix));
  ASSERT_EQ(a.lora.size(), b.lora.size());
  for (size_t i = 0; i < a.lora.size(); ++i) {
    ASSERT_TRUE(a.lora[i].defined() && b.lora[i].defined()) << i;
    EXPECT_TRUE(torch::equal(a.lora[i], b.lora[i])) << "LoRA gradient " << i;
  }
}

TEST(Recompute, EveryModeGivesTheKeptGradientsBitForBit) {
  using R = ModelOptions::Recompute;
  const Grads never = run(R::kNever, 0);
  EXPECT_GT(never.prefix.abs().max().item<double>(), 0.0);
  expect_same_bits(run(R::kAlways, 0), never);
  expect_same_bits(run(R::kAuto, 0), never);  // budget 0, unsharded: every block kept
  // A budget for one block: B x S = 2 x 8 positions (prompt of 2),
  // 16 x (8 x 16 + 3 x 8 + 4 x 24) x 4 B + 2 x 2 x 4 heads x 8^2 x 4 B =
  // 19,968 B per block: block 0 kept, blocks 1 and 2 recomputed.
  expect_same_bits(run(R::kAuto, 20'000), never);
}

// Which blocks recompute shows in the graph: a recomputed block's output
// hangs off the recomputing node, a kept block's off its last addition.
TEST(Recompute, AutoKeepsTheBlocksThatFitTheBudget) {
  auto src = random_weights(config(), 3);
  ModelOptions opt;
  opt.activation_budget_bytes = 20'000;
  Transformer m(*src, opt);
  auto x = at::randn({2, 8, 16}).requires_grad_(true);
  auto node_of = [&](std::int64_t layers) { return m.hidden_after(x, {}, layers).grad_fn()->name(); };
  EXPECT_EQ(node_of(1).find("ShardedBlockBackward"), std::string::npos) << node_of(1);
  EXPECT_NE(node_of(2).find("ShardedBlockBackward"), std::string::npos) << node_of(2);
  opt.activation_budget_bytes = 40'000;  // two blocks
  Transformer m2(*src, opt);
  EXPECT_EQ(m2.hidden_after(x, {}, 2).grad_fn()->name().find("ShardedBlockBackward"),
            std::string::npos);
  opt.recompute = ModelOptions::Recompute::kAlways;
  Transformer m3(*src, opt);
  EXPECT_NE(m3.hidden_after(x, {}, 1).grad_fn()->name().find("ShardedBlockBackward"),
            std::string::npos);
}

TEST(Recompute, ParsesTheConfigNames) {
  EXPECT_EQ(parse_recompute("never", "k"), ModelOptions::Recompute::kNever);
  EXPECT_EQ(parse_recompute("always", "k"), ModelOptions::Recompute::kAlways);
  EXPECT_EQ(parse_recompute("auto", "k"), ModelOptions::Recompute::kAuto);
  EXPECT_ANY_THROW(parse_recompute("sometimes", "k"));
}

}  // namespace
}  // namespace sparc
