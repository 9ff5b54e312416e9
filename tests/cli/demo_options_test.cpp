// sparc demo's --device and --backend (issue 18): the configs its pretraining
// and training runs read, with the overrides the demo passes them, carry the
// device and backend; a --train-set / --pretrain-set of the same key wins.
#include <gtest/gtest.h>

#include "config/pretrain_config.h"
#include "config/run_config.h"
#include "demo/demo.h"
#include "demo/demo_configs.h"

namespace sparc {
namespace {

TEST(DemoOptions, DeviceAndBackendReachThePretrainingAndEveryTrainingConfig) {
  demo::Options o;
  o.device = "cuda:1";
  o.backend = "nccl";
  const PretrainConfig pre = parse_pretrain_config(demo::demo_pretrain_yaml(), "pretrain.yaml",
                                                   "", demo::pretrain_overrides(o));
  EXPECT_EQ(pre.device, "cuda:1");
  EXPECT_EQ(pre.backend, "nccl");
  for (const std::string* yaml :
       {&demo::demo_task_incremental_yaml(), &demo::demo_domain_incremental_yaml()}) {
    const RunConfig run = parse_run_config(*yaml, "run.yaml", "", demo::train_overrides(o));
    EXPECT_EQ(run.model.device, "cuda:1");
    EXPECT_EQ(run.comm.backend, "nccl");
  }
}

TEST(DemoOptions, WithoutThemTheConfigsKeepTheirOwnDeviceAndBackend) {
  demo::Options o;
  EXPECT_TRUE(demo::pretrain_overrides(o).empty());
  EXPECT_TRUE(demo::train_overrides(o).empty());
  const RunConfig run =
      parse_run_config(demo::demo_task_incremental_yaml(), "run.yaml", "", demo::train_overrides(o));
  EXPECT_EQ(run.model.device, "cpu");
  EXPECT_EQ(run.comm.backend, "auto");
}

TEST(DemoOptions, AnExplicitSetOfTheSameKeyWins) {
  demo::Options o;
  o.device = "cuda";
  o.train_sets = {"model.device=cpu"};
  o.pretrain_sets = {"comm.backend=mpi"};
  o.backend = "nccl";
  const RunConfig run =
      parse_run_config(demo::demo_task_incremental_yaml(), "run.yaml", "", demo::train_overrides(o));
  EXPECT_EQ(run.model.device, "cpu");
  EXPECT_EQ(run.comm.backend, "nccl");
  const PretrainConfig pre = parse_pretrain_config(demo::demo_pretrain_yaml(), "pretrain.yaml",
                                                   "", demo::pretrain_overrides(o));
  EXPECT_EQ(pre.device, "cuda");
  EXPECT_EQ(pre.backend, "mpi");
}

}  // namespace
}  // namespace sparc
