// The continual trainer on the tiny configs (configs/tiny-*.yaml) with the
// shared aidreams260K model: the properties SPEC sections 1 and 2 promise.
#include "train/trainer.h"

#include <gtest/gtest.h>

#include <cmath>

#include "model/model_loader.h"
#include "test_util.h"

namespace sparc {
namespace {

const char* kModel = "models/aidreams260K/model.bin";

RunConfig tiny(const std::string& name, std::vector<std::string> sets = {}) {
  return load_run_config(std::string(SPARC_SOURCE_DIR) + "/configs/" + name, sets);
}

// Two standard errors of an accuracy on n examples, at its largest (p = 1/2).
double two_se(std::int64_t n) { return 2.0 * std::sqrt(0.25 / double(n)); }

TEST(Trainer, FrozenMethodsChangeOnlyTheirOwnParameters) {
  SPARC_REQUIRE_SHARED(kModel);
  for (const char* method : {"sparc", "sparc+lora"}) {
    auto cfg = tiny("tiny-task-incremental.yaml",
                    {std::string("method=") + method, "train.epochs=1",
                     "train.max_train_examples=48", "eval.max_examples=50"});
    ContinualTrainer trainer(cfg, test::make_temp_dir() + "/run");
    auto r = trainer.run();
    // Every base weight is bit-identical to a fresh load.
    Transformer fresh(*open_model(cfg.model.path), {});
    auto before = fresh.named_weights();
    auto after = trainer.model().named_weights();
    ASSERT_EQ(before.size(), after.size());
    for (size_t i = 0; i < before.size(); ++i) {
      EXPECT_EQ(before[i].first, after[i].first);
      EXPECT_TRUE(torch::equal(before[i].second, after[i].second)) << method << " " << before[i].first;
    }
    // The coefficients moved; the adapters (B starts at 0) too for sparc+lora.
    for (const auto& e : trainer.library()) {
      EXPECT_GT((e.z - e.z_init).abs().max().item<double>(), 1e-4) << e.name;
      for (const auto& [name, a] : e.lora) EXPECT_GT(a->b.abs().max().item<double>(), 0) << name;
      EXPECT_EQ(e.lora.empty(), std::string(method) == "sparc");
    }
    // Exact trainable counts: P x k, plus r x (in + out) per adapted projection
    // (q: 64x64, v: 64x64 on 4 layers).
    std::int64_t expect = std::int64_t(cfg.prompt.length) * cfg.pca.k;
    if (std::string(method) == "sparc+lora") expect += 4 * 2 * cfg.lora.rank * (64 + 64);
    EXPECT_EQ(r.trainable_params, expect) << method;
    EXPECT_EQ(r.model_params, fresh.parameter_count());
    EXPECT_EQ(r.ppl_before, r.ppl_after);  // the model used for plain text did not change
  }
}

TEST(Trainer, TinyTaskIncrementalSparcKeepsEverythingAndBeatsZeroShot) {
  SPARC_REQUIRE_SHARED(kModel);
  ContinualTrainer trainer(tiny("tiny-task-incremental.yaml"), test::make_temp_dir() + "/run");
  auto r = trainer.run();
  const auto& A = r.accuracy;
  const size_t T = A.size();
  ASSERT_EQ(T, 3u);
  EXPECT_EQ(r.metrics.bwt, 0.0);  // old prompts are never touched
  for (size_t j = 0; j < T; ++j) {
    EXPECT_EQ(A[T - 1][j], A[j][j]) << "task " << j;
    EXPECT_GE(A[T - 1][j] - r.zero_shot[j], two_se(r.test_sizes[j]))
        << "task " << j << ": " << A[T - 1][j] << " vs zero-shot " << r.zero_shot[j];
  }
  // `mood` reads the same kind of phrases as `nature` (reuse); `count` does not.
  const auto& lib = trainer.library();
  EXPECT_EQ(lib[1].reused_from, 0);
  EXPECT_EQ(lib[2].reused_from, -1);
  EXPECT_GT(lib[2].orth_directions, 0);
}

TEST(Trainer, TinyTaskIncrementalFullFineTuningForgets) {
  SPARC_REQUIRE_SHARED(kModel);
  ContinualTrainer trainer(tiny("tiny-task-incremental.yaml", {"method=full", "train.lr=0.003"}),
                           test::make_temp_dir() + "/run");
  auto r = trainer.run();
  EXPECT_LT(r.metrics.bwt, 0.0);
  EXPECT_NE(r.ppl_before, r.ppl_after);
}

TEST(Trainer, TinyDomainIncrementalRoutesAboveChance) {
  SPARC_REQUIRE_SHARED(kModel);
  ContinualTrainer trainer(tiny("tiny-domain-incremental.yaml"), test::make_temp_dir() + "/run");
  auto r = trainer.run();
  std::int64_t n = 0;
  for (auto s : r.test_sizes) n += s;
  const double chance = 1.0 / 3.0;
  ASSERT_GE(r.routing_accuracy, 0.0);
  EXPECT_GE(r.routing_accuracy - chance, 2.0 * std::sqrt(chance * (1 - chance) / double(n)));
}

TEST(Trainer, GradientAccumulationEqualsOneLargeBatch) {
  SPARC_REQUIRE_SHARED(kModel);
  auto run = [](const std::vector<std::string>& sets) {
    std::vector<std::string> all = {"train.epochs=1", "train.max_train_examples=64",
                                    "eval.max_examples=20"};
    all.insert(all.end(), sets.begin(), sets.end());
    ContinualTrainer t(tiny("tiny-task-incremental.yaml", all), test::make_temp_dir() + "/run");
    t.run();
    const auto& e = t.library().front();  // the first task starts from the same point
    return std::make_pair(e.z.clone(), e.z_init.clone());
  };
  // Same examples, same order, same step boundaries: only float summation
  // order differs, so the trained coefficients agree far below how far
  // training moved them (Adam's normalisation amplifies rounding in
  // near-zero gradient coordinates, hence a relative bound).
  auto [big, init] = run({"train.batch_size=16", "train.grad_accum=1"});
  auto [accumulated, init2] = run({"train.batch_size=4", "train.grad_accum=4"});
  EXPECT_TRUE(torch::equal(init, init2));
  const double moved = (big - init).norm().item<double>();
  EXPECT_GT(moved, 1e-2);
  EXPECT_LE((big - accumulated).norm().item<double>(), 1e-3 * moved);
}

TEST(Trainer, PcaSourcesHiddenZeroEqualsEmbeddingAndMeanIsPerExample) {
  SPARC_REQUIRE_SHARED(kModel);
  auto subspace = [](const std::string& source) {
    ContinualTrainer t(tiny("tiny-task-incremental.yaml",
                            {"train.epochs=1", "train.max_train_examples=64",
                             "eval.max_examples=20", "pca.source=" + source}),
                       test::make_temp_dir() + "/run");
    t.run();
    return t.library()[0].subspace;
  };
  auto emb = subspace("embedding");
  auto hidden0 = subspace("hidden:0");  // the residual stream before any block
  EXPECT_LE((emb.basis - hidden0.basis).abs().max().item<double>(), 1e-9);
  EXPECT_LE((emb.eigenvalues - hidden0.eigenvalues).abs().max().item<double>(), 1e-9);
  auto hidden2 = subspace("hidden:2");
  EXPECT_LT(subspace_similarity(emb.basis, hidden2.basis), 0.999);  // a different space
  auto mean = subspace("mean");
  // One vector per example: its mean is the mean of the per-example means,
  // which differs from the token-weighted mean of the embedding source.
  EXPECT_GT((mean.mu - emb.mu).abs().max().item<double>(), 1e-6);
}

TEST(Trainer, SavedLibraryReproducesTheFinalRow) {
  SPARC_REQUIRE_SHARED(kModel);
  for (const char* method : {"sparc+lora", "lora"}) {
    auto cfg = tiny("tiny-task-incremental.yaml",
                    {std::string("method=") + method, "train.epochs=1",
                     "train.max_train_examples=48", "eval.max_examples=40", "train.lr=0.01"});
    const std::string dir = test::make_temp_dir() + "/run";
    RunResults trained;
    {
      ContinualTrainer t(cfg, dir);
      trained = t.run();
    }
    ContinualTrainer again(cfg, dir);
    auto evaluated = again.evaluate_saved();
    EXPECT_EQ(evaluated.accuracy.back(), trained.accuracy.back()) << method;
  }
}

TEST(Schedule, WarmupThenCosineAndLinearByHand) {
  EXPECT_DOUBLE_EQ(scheduled_lr("cosine", 1.0, 0, 10, 2), 0.5);   // warm-up step 1 of 2
  EXPECT_DOUBLE_EQ(scheduled_lr("cosine", 1.0, 1, 10, 2), 1.0);
  EXPECT_DOUBLE_EQ(scheduled_lr("cosine", 1.0, 2, 10, 2), 1.0);   // decay starts at 1
  EXPECT_NEAR(scheduled_lr("cosine", 1.0, 6, 10, 2), 0.5, 1e-12); // half way: cos(pi/2)
  EXPECT_NEAR(scheduled_lr("linear", 1.0, 6, 10, 2), 0.5, 1e-12);
  EXPECT_DOUBLE_EQ(scheduled_lr("constant", 0.3, 9, 10, 0), 0.3);
}

TEST(EpochOrder, IsAPermutationThatDependsOnlyOnItsKey) {
  auto a = epoch_order(100, 7, 1, 0);
  auto sorted = a;
  std::sort(sorted.begin(), sorted.end());
  for (std::int64_t i = 0; i < 100; ++i) EXPECT_EQ(sorted[i], i);
  EXPECT_EQ(a, epoch_order(100, 7, 1, 0));
  EXPECT_NE(a, epoch_order(100, 7, 1, 1));
  EXPECT_NE(a, epoch_order(100, 8, 1, 0));
}

}  // namespace
}  // namespace sparc
