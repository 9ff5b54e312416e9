// The methods as types (src/sparc/method.h): each method's trainable
// tensors, their checkpoint names, its per-task parameter count, what its
// initialisation and freezing leave in a task's record, and its penalty,
// each against a hand-computed expectation on a tiny random llama.
#include "sparc/method.h"

#include <gtest/gtest.h>

#include "config/run_config.h"
#include "model/weight_source.h"
#include "sparc/lora_sites.h"

namespace sparc {
namespace {

// D = 16, 2 layers, 2 heads of 8, 1 key/value head: q is 16 -> 16, v is 16 -> 8.
ModelConfig tiny() {
  ModelConfig c;
  c.vocab_size = 40, c.dim = 16, c.n_layers = 2, c.n_heads = 2, c.n_kv_heads = 1;
  c.head_dim = 8, c.ffn_dim = 32, c.max_seq_len = 64;
  return c;
}

RunConfig config(const std::string& method, double lambda_orth = 0) {
  return parse_run_config(
      "model: {path: /models/tiny}\nprompt: {length: 3}\npca: {k: 4}\n"
      "lora: {rank: 2, alpha: 4, targets: [q, v]}\n"
      "tasks:\n  - {name: a, train: x, test: y, verbalizer: {'0': p, '1': q}}\n",
      "x.yaml", "", {"method=" + method, "train.lambda_orth=" + std::to_string(lambda_orth)});
}

// A subspace with orthonormal rows: the first k coordinate axes, shifted by `shift`.
Subspace axes(std::int64_t k, std::int64_t D, double shift = 0) {
  Subspace s;
  s.basis = torch::eye(D, torch::kFloat64).slice(0, 0, k);
  s.mu = torch::full({D}, shift, torch::kFloat64);
  s.eigenvalues = torch::ones({k}, torch::kFloat64);
  s.explained_variance_ratio = 0.5;
  return s;
}

struct Fixture {
  std::unique_ptr<TensorMapSource> source = random_weights(tiny(), 3);
  Transformer model{*source, ModelOptions{}};
  std::vector<TaskRecord> library;
  torch::Tensor sampled = torch::arange(48, torch::kFloat64).reshape({3, 16}).div(10);
  MethodContext context(const RunConfig& cfg) {
    return {cfg, model, library, [this](std::size_t) { return sampled; }};
  }
};

// Per layer: q r (16 + 16) + v r (8 + 16) with r = 2.
constexpr std::int64_t kLoraValues = 2 * (2 * 32 + 2 * 24);

TEST(Method, EveryTableRowHasAnImplementationOfItsOwnId) {
  for (const auto& row : all_methods()) {
    auto m = make_method(row.id);
    EXPECT_EQ(m->traits().id, row.id);
    EXPECT_EQ(std::string(m->traits().name), method_name(row.id));
  }
}

TEST(Method, SubspacePromptTrainsItsCoefficientsAlone) {
  Fixture f;
  const RunConfig cfg = config("sparc");
  auto m = make_method(cfg.method);
  TaskRecord r = m->initial_record(f.context(cfg), 0, "a", axes(4, 16), false);
  // No stored task: the sampled embeddings projected, (x - mu) W^T, unchanged.
  EXPECT_TRUE(torch::equal(r.z, f.sampled.slice(1, 0, 4).to(torch::kFloat32)));
  EXPECT_EQ(r.reused_from, -1);
  LoraSet shared;
  Trainables t = m->begin_task(r, shared, f.model);
  EXPECT_EQ(t.names, std::vector<std::string>{"z"});
  ASSERT_EQ(t.prompt_group.size(), 1u);
  EXPECT_TRUE(t.prompt_group[0].requires_grad());
  EXPECT_TRUE(t.lora_group.empty());
  EXPECT_EQ(m->trainable_per_task(cfg, f.model), 3 * 4);
  {
    torch::NoGradGuard g;
    r.z.add_(1.0);
  }
  m->end_task(r, shared, f.model);
  EXPECT_FALSE(r.z.requires_grad());
  // prompt = Z W + mu, here Z padded with zeros to D columns.
  auto expect = torch::cat({r.z, torch::zeros({3, 12})}, 1);
  EXPECT_TRUE(torch::allclose(r.prompt, expect, 0, 1e-6));
}

TEST(Method, SubspacePromptReusesAnIdenticalSubspace) {
  Fixture f;
  const RunConfig cfg = config("sparc");
  auto m = make_method(cfg.method);
  TaskRecord stored;
  stored.name = "old";
  stored.subspace = axes(4, 16);
  stored.prompt = torch::ones({3, 16});
  stored.z = torch::ones({3, 4});
  f.library.push_back(stored);
  TaskRecord r = m->initial_record(f.context(cfg), 1, "a", axes(4, 16, 0.5), false);
  EXPECT_EQ(r.reused_from, 0);
  ASSERT_EQ(r.similarities.size(), 1u);
  EXPECT_DOUBLE_EQ(r.similarities[0], 1.0);
  // (prompt_j - mu) W^T = 1 - 0.5 on the first four axes.
  EXPECT_TRUE(torch::allclose(r.z, torch::full({3, 4}, 0.5), 0, 1e-6));
}

TEST(Method, OrthogonalityPenaltyOnlyWithLambdaAndAStoredTask) {
  Fixture f;
  auto m = make_method(MethodId::kSparc);
  TaskRecord stored;
  stored.subspace = axes(4, 16);
  stored.z = torch::zeros({3, 4});
  stored.z.index_put_({0, 0}, 2.0);
  EXPECT_FALSE(m->penalty({}, 0.5));
  EXPECT_FALSE(m->penalty({stored}, 0.0));
  auto penalty = m->penalty({stored}, 0.5);
  ASSERT_TRUE(penalty);
  TaskRecord r;
  r.subspace = axes(4, 16);
  r.z = torch::zeros({3, 4});
  r.z.index_put_({1, 0}, 3.0);
  // Z W (Z_j W_j)^T has one entry, 3 * 2 = 6: 0.5 * 36.
  EXPECT_NEAR(penalty(r).item<double>(), 18.0, 1e-5);
  EXPECT_FALSE(make_method(MethodId::kPrompt)->penalty({stored}, 0.5));
}

TEST(Method, SubspacePromptWithLoraOwnsItsAdapters) {
  Fixture f;
  const RunConfig cfg = config("sparc+lora");
  auto m = make_method(cfg.method);
  TaskRecord r = m->initial_record(f.context(cfg), 0, "a", axes(4, 16), false);
  ASSERT_EQ(r.lora.size(), 4u);
  LoraSet shared;
  Trainables t = m->begin_task(r, shared, f.model);
  const std::vector<std::string> names = {
      "z",
      "lora.layers.0.q.a", "lora.layers.0.q.b", "lora.layers.0.v.a", "lora.layers.0.v.b",
      "lora.layers.1.q.a", "lora.layers.1.q.b", "lora.layers.1.v.a", "lora.layers.1.v.b"};
  EXPECT_EQ(t.names, names);
  EXPECT_EQ(t.lora_group.size(), 8u);
  EXPECT_EQ(t.adapters, &r.lora);
  EXPECT_EQ(r.lora.at("layers.0.v")->b.sizes(), (std::vector<std::int64_t>{8, 2}));
  EXPECT_EQ(m->trainable_per_task(cfg, f.model), 3 * 4 + kLoraValues);
  m->end_task(r, shared, f.model);
  for (const auto& [site, a] : r.lora) EXPECT_FALSE(a->a.requires_grad()) << site;
  EXPECT_TRUE(shared.empty());
}

TEST(Method, FreePromptTrainsPTimesD) {
  Fixture f;
  const RunConfig cfg = config("prompt");
  auto m = make_method(cfg.method);
  TaskRecord r = m->initial_record(f.context(cfg), 0, "a", axes(4, 16), false);
  EXPECT_TRUE(torch::equal(r.prompt, f.sampled.to(torch::kFloat32)));
  EXPECT_FALSE(r.z.defined());
  LoraSet shared;
  Trainables t = m->begin_task(r, shared, f.model);
  EXPECT_EQ(t.names, std::vector<std::string>{"prompt"});
  EXPECT_TRUE(torch::equal(m->prefix(r), r.prompt));
  EXPECT_EQ(m->trainable_per_task(cfg, f.model), 3 * 16);
  EXPECT_TRUE(m->per_task());
}

TEST(Method, SharedLoraIsOneSetForTheRun) {
  Fixture f;
  const RunConfig cfg = config("lora");
  auto m = make_method(cfg.method);
  LoraSet shared;
  m->begin_run(f.context(cfg), shared);
  EXPECT_EQ(shared.size(), 4u);
  TaskRecord r = m->initial_record(f.context(cfg), 0, "a", axes(4, 16), false);
  EXPECT_FALSE(r.prompt.defined());
  EXPECT_TRUE(r.lora.empty());
  Trainables t = m->begin_task(r, shared, f.model);
  EXPECT_EQ(t.adapters, &shared);
  EXPECT_EQ(t.names.size(), 8u);
  EXPECT_TRUE(t.prompt_group.empty());
  EXPECT_FALSE(m->prefix(r).defined());
  EXPECT_EQ(m->trainable_per_task(cfg, f.model), kLoraValues);
  EXPECT_FALSE(m->per_task());
}

TEST(Method, FullFinetuneTrainsEveryWeightWhileItsTaskRuns) {
  Fixture f;
  const RunConfig cfg = config("full");
  auto m = make_method(cfg.method);
  TaskRecord r = m->initial_record(f.context(cfg), 0, "a", axes(4, 16), false);
  LoraSet shared;
  Trainables t = m->begin_task(r, shared, f.model);
  const auto weights = f.model.named_weights();
  ASSERT_EQ(t.names.size(), weights.size());
  for (size_t i = 0; i < weights.size(); ++i) {
    EXPECT_EQ(t.names[i], "weights." + weights[i].first);
    EXPECT_TRUE(weights[i].second.requires_grad()) << weights[i].first;
  }
  EXPECT_EQ(m->trainable_per_task(cfg, f.model), tiny().parameter_count());
  m->end_task(r, shared, f.model);
  for (const auto& [name, w] : f.model.named_weights()) EXPECT_FALSE(w.requires_grad()) << name;
}

}  // namespace
}  // namespace sparc
