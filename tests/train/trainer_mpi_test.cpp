// Data parallel training (SPEC 3), run by CTest under `mpirun -np 2`: the
// same tiny sequence on 2 ranks and on a single process gives identical
// accuracy matrices and trainable tensors equal to 1e-5 (only the order of
// floating-point sums differs), and the gradient all-reduce carries exactly
// the trainable parameters: 4 bytes each, one call per optimizer step.
#include <gtest/gtest.h>

#include <cmath>

#include "comm/communicator.h"
#include "test_util.h"
#include "train/trainer.h"

namespace sparc {
namespace {

Communicator* g_comm = nullptr;

RunConfig tiny(const std::string& method) {
  return load_run_config(std::string(SPARC_SOURCE_DIR) + "/configs/tiny-task-incremental.yaml",
                         {"method=" + method, "train.epochs=2", "train.max_train_examples=96",
                          "eval.max_examples=120", "lora.dropout=0.1", "train.lr=0.05"});
}

// A directory name every rank agrees on (rank 0 makes it, then broadcasts its name).
std::string shared_temp_dir() {
  auto name = torch::zeros({256}, torch::kUInt8);
  if (g_comm->rank() == 0) {
    std::string d = test::make_temp_dir();
    std::memcpy(name.data_ptr(), d.data(), d.size());
  }
  g_comm->broadcast(name, 0, CommTag::kControl);
  return std::string(reinterpret_cast<const char*>(name.data_ptr()));
}

class DataParallel : public ::testing::TestWithParam<const char*> {};

TEST_P(DataParallel, TwoRanksMatchOneProcess) {
  if (!test::path_exists(test::shared_dir() + "/models/aidreams260K/model.bin"))
    GTEST_SKIP() << "shared data absent: aidreams260K";
  ASSERT_EQ(g_comm->size(), 2) << "run under mpirun -np 2";
  const std::string method = GetParam();
  const std::string dir = shared_temp_dir();
  g_comm->reset_counters();
  ContinualTrainer dist(tiny(method), dir + "/dist", g_comm);
  RunResults rd = dist.run();
  const auto grad = g_comm->counters(CommTag::kGrad);
  // Steps: 3 tasks x 2 epochs x ceil(96 / 16) = 36 optimizer steps.
  EXPECT_EQ(grad.calls, 36);
  EXPECT_EQ(grad.bytes, grad.calls * 4 * rd.trainable_params);

  if (g_comm->rank() == 0) {
    ContinualTrainer single(tiny(method), dir + "/single");
    RunResults rs = single.run();
    EXPECT_EQ(rd.accuracy, rs.accuracy) << method;
    EXPECT_EQ(rd.zero_shot, rs.zero_shot);
    ASSERT_EQ(dist.library().size(), single.library().size());
    for (size_t i = 0; i < dist.library().size(); ++i) {
      const auto& a = dist.library()[i];
      const auto& b = single.library()[i];
      EXPECT_LE((a.z - b.z).abs().max().item<double>(), 1e-5) << a.name;
      EXPECT_LE((a.subspace.basis - b.subspace.basis).abs().max().item<double>(), 1e-9) << a.name;
      for (const auto& [m, ad] : a.lora) {
        EXPECT_LE((ad->a - b.lora.at(m)->a).abs().max().item<double>(), 1e-5) << m;
        EXPECT_LE((ad->b - b.lora.at(m)->b).abs().max().item<double>(), 1e-5) << m;
      }
    }
  }
  g_comm->barrier(CommTag::kControl);
}

INSTANTIATE_TEST_SUITE_P(Methods, DataParallel, ::testing::Values("sparc", "sparc+lora"));

}  // namespace
}  // namespace sparc

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  auto comm = sparc::make_mpi_communicator();
  comm->set_timeout(120);
  sparc::g_comm = comm.get();
  // Only rank 0 reports, so the output reads as one run.
  if (comm->rank() != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
  }
  int rc = RUN_ALL_TESTS();
  auto flag = torch::tensor({rc}, torch::kInt32);
  comm->all_reduce(flag, sparc::ReduceOp::kMax, sparc::CommTag::kControl);
  return flag.item<int>();
}
