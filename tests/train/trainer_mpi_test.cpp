// Data parallel training (SPEC 3), run by CTest under `mpirun -np 2`: the
// same tiny sequence on 2 ranks and on a single process gives identical
// accuracy matrices and trainable tensors equal to 1e-5 (only the order of
// floating-point sums differs), and the gradient all-reduce carries exactly
// the trainable parameters: 4 bytes each, one call per optimizer step.
#include <gtest/gtest.h>

#include <cctype>
#include <cmath>
#include <fstream>
#include <sstream>

#include "comm/communicator.h"
#include "comm/mpi_test_main.h"
#include "test_util.h"
#include "model/model_loader.h"
#include "model/transformer.h"
#include "train/pretrain.h"
#include "train/trainer.h"

namespace sparc {
namespace {

Communicator* g_comm = nullptr;

// A case: "<method>[ sharded][ domain]". `sharded` runs the 2-rank side
// with model.sharding=layer (the reference holds the whole model);
// `domain` takes the domain-incremental config with PCA on hidden states,
// so routing runs the blocks too.
struct Case {
  std::string method;
  bool sharded = false, domain = false;
};
Case parse(const std::string& text) {
  Case c;
  std::istringstream in(text);
  in >> c.method;
  for (std::string w; in >> w;) (w == "sharded" ? c.sharded : c.domain) = true;
  return c;
}

RunConfig tiny(const Case& c, bool distributed) {
  std::vector<std::string> sets = {"method=" + c.method, "train.epochs=2",
                                   "train.max_train_examples=96", "eval.max_examples=120",
                                   "lora.dropout=0.1"};
  if (c.sharded && distributed) sets.push_back("model.sharding=layer");
  if (c.domain) sets.push_back("pca.source=hidden:2");
  return load_run_config(std::string(SPARC_SOURCE_DIR) + "/configs/tiny-" +
                             (c.domain ? "domain" : "task") + "-incremental.yaml",
                         sets);
}

std::string shared_temp_dir() { return test::shared_temp_dir(*g_comm); }

class DataParallel : public ::testing::TestWithParam<const char*> {};

TEST_P(DataParallel, TwoRanksMatchOneProcess) {
  SPARC_REQUIRE_SHARED("models/aidreams260K/model.bin");
  ASSERT_EQ(g_comm->size(), 2) << "run under mpirun -np 2";
  const Case c = parse(GetParam());
  const std::string dir = shared_temp_dir();
  g_comm->reset_counters();
  ContinualTrainer dist(tiny(c, true), dir + "/dist", g_comm);
  RunResults rd = dist.run();
  const auto grad = g_comm->counters(CommTag::kGrad);
  // Steps: 3 tasks x 2 epochs x ceil(96 / 16) = 36 optimizer steps, each one
  // MAX (an f64 per trainable tensor: the prompt coefficients, and A and B of
  // q and v in 4 layers with LoRA) and one int64 SUM of every gradient.
  const std::int64_t tensors = 1 + (c.method == "sparc+lora" ? 2 * 2 * 4 : 0);
  EXPECT_EQ(grad.calls, 2 * 36);
  EXPECT_EQ(grad.bytes, 36 * (8 * tensors + 8 * rd.trainable_params));

  // Same bits at any world size (SPEC 3): the single process's results,
  // prompts, subspaces and adapters, exactly (sharded or not).
  if (g_comm->rank() == 0) {
    ContinualTrainer single(tiny(c, false), dir + "/single");
    RunResults rs = single.run();
    EXPECT_EQ(rd.accuracy, rs.accuracy) << GetParam();
    EXPECT_EQ(rd.routing_accuracy, rs.routing_accuracy);
    EXPECT_EQ(rd.zero_shot, rs.zero_shot);
    EXPECT_EQ(rd.ppl_before, rs.ppl_before);
    EXPECT_EQ(rd.ppl_after, rs.ppl_after);
    ASSERT_EQ(dist.library().size(), single.library().size());
    for (size_t i = 0; i < dist.library().size(); ++i) {
      const auto& a = dist.library()[i];
      const auto& b = single.library()[i];
      EXPECT_TRUE(torch::equal(a.z, b.z)) << a.name;
      EXPECT_TRUE(torch::equal(a.subspace.basis, b.subspace.basis)) << a.name;
      EXPECT_TRUE(torch::equal(a.subspace.mu, b.subspace.mu)) << a.name;
      for (const auto& [m, ad] : a.lora) {
        EXPECT_TRUE(torch::equal(ad->a, b.lora.at(m)->a)) << m;
        EXPECT_TRUE(torch::equal(ad->b, b.lora.at(m)->b)) << m;
      }
    }
  }
  g_comm->barrier(CommTag::kControl);
}

INSTANTIATE_TEST_SUITE_P(Methods, DataParallel,
                         ::testing::Values("sparc", "sparc+lora", "sparc+lora sharded",
                                           "sparc sharded domain"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& ch : n)
                             if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           return n;
                         });

// sparc pretrain, data parallel: 2 ranks give the single process's model
// (the sample order and the split depend on the seed only; the summed
// gradient of a step is the same up to the order of float sums).
TEST(Pretrain, TwoRanksMatchOneProcess) {
  const std::string dir = shared_temp_dir();
  if (g_comm->rank() == 0) {
    std::ofstream out(dir + "/corpus.txt");
    for (int i = 0; i < 300; ++i) out << "line " << i % 7 << " says " << (i * 13) % 11 << ".\n";
  }
  g_comm->barrier(CommTag::kControl);
  auto cfg = [&](const std::string& out) {
    return parse_pretrain_config(
        "out: " + out + "\nmodel: {dim: 32, layers: 2, heads: 2, ffn: 64, max_seq_len: 64}\n"
        "data: {text: corpus.txt, val_fraction: 0.2}\n"
        "train: {steps: 30, batch_size: 8, seq_len: 32, lr: 0.01, warmup_steps: 3}\n",
        dir + "/p.yaml", dir);
  };
  g_comm->reset_counters();
  PretrainResult rd = pretrain(cfg("dist"), g_comm);
  const auto grad = g_comm->counters(CommTag::kGrad);
  if (g_comm->rank() == 0) {
    EXPECT_EQ(grad.calls, 30);
    EXPECT_EQ(grad.bytes, 30 * 4 * rd.parameters);  // every weight's gradient, once per step
    PretrainResult rs = pretrain(cfg("single"));
    EXPECT_NEAR(rd.initial_val_loss, rs.initial_val_loss, 1e-6);
    EXPECT_NEAR(rd.final_val_loss, rs.final_val_loss, 1e-4);
    Transformer a(*open_model(dir + "/dist"), {});
    Transformer b(*open_model(dir + "/single"), {});
    auto wa = a.named_weights(), wb = b.named_weights();
    ASSERT_EQ(wa.size(), wb.size());
    for (size_t i = 0; i < wa.size(); ++i)
      EXPECT_LE((wa[i].second - wb[i].second).abs().max().item<double>(), 1e-4) << wa[i].first;
  }
  g_comm->barrier(CommTag::kControl);
}

}  // namespace
}  // namespace sparc

int main(int argc, char** argv) {
  return sparc::test::run_mpi_tests(argc, argv, 120, &sparc::g_comm);
}
