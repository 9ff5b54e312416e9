// Device placement without a GPU: each rank's choice from what it sees
// (node-local rank, CUDA_VISIBLE_DEVICES, the visible GPUs' identities), and
// two ranks of one host on one physical GPU refused with hosts and GPUs named.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "comm/device_placement.h"
#include "core/error.h"

namespace sparc {
namespace {

// The physical GPUs of a host: name, UUID, PCI id all differ per GPU and host.
GpuIdentity gpu(const std::string& host, int i) {
  return GpuIdentity{"NVIDIA H200", "GPU-" + host + "-000" + std::to_string(i),
                     "0000:" + std::to_string(10 + i) + ":00.0"};
}

std::vector<GpuIdentity> gpus(const std::string& host, const std::vector<int>& ids) {
  std::vector<GpuIdentity> out;
  for (int i : ids) out.push_back(gpu(host, i));
  return out;
}

// Rank views of `hosts` hosts with `per_host` ranks each.
// pinned: the launcher left each rank its own GPU alone in CUDA_VISIBLE_DEVICES
// (launch/rank.sh); otherwise every rank sees all `gpus_per_host` GPUs.
std::vector<GpuView> cluster(int hosts, int per_host, int gpus_per_host, bool pinned) {
  std::vector<GpuView> views;
  for (int h = 0; h < hosts; ++h) {
    const std::string host = "node" + std::to_string(h);
    for (int l = 0; l < per_host; ++l) {
      GpuView v;
      v.rank = h * per_host + l;
      v.host = host;
      v.local_rank = l;
      v.local_size = per_host;
      if (pinned) {
        v.cuda_visible_devices = std::to_string(l);
        v.visible = gpus(host, {l});
      } else {
        std::vector<int> all;
        for (int g = 0; g < gpus_per_host; ++g) all.push_back(g);
        v.visible = gpus(host, all);
      }
      views.push_back(v);
    }
  }
  return views;
}

std::vector<GpuChoice> choose_all(const std::vector<GpuView>& views) {
  std::vector<GpuChoice> out;
  for (const auto& v : views) out.push_back(choose_gpu(v));
  return out;
}

std::string error_of(const std::vector<GpuView>& views) {
  try {
    check_distinct_gpus(choose_all(views));
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

TEST(DevicePlacement, OneToFourRanksPerHostSeeingAllGpusTakeTheirLocalRanksGpu) {
  for (int per_host = 1; per_host <= 4; ++per_host) {
    SCOPED_TRACE(per_host);
    const auto views = cluster(2, per_host, /*gpus_per_host=*/4, /*pinned=*/false);
    const auto choices = choose_all(views);
    for (size_t i = 0; i < views.size(); ++i) {
      EXPECT_EQ(choices[i].ordinal, views[i].local_rank);
      EXPECT_EQ(choices[i].gpu.uuid, gpu(views[i].host, views[i].local_rank).uuid);
      EXPECT_EQ(choices[i].host, views[i].host);
    }
    EXPECT_NO_THROW(check_distinct_gpus(choices));
  }
}

TEST(DevicePlacement, OneToFourRanksPinnedByTheLauncherUseTheirOnlyGpu) {
  for (int per_host = 1; per_host <= 4; ++per_host) {
    SCOPED_TRACE(per_host);
    const auto views = cluster(2, per_host, 4, /*pinned=*/true);
    const auto choices = choose_all(views);
    for (size_t i = 0; i < views.size(); ++i) {
      EXPECT_EQ(choices[i].ordinal, 0);  // the one device in the process
      EXPECT_EQ(choices[i].gpu.uuid, gpu(views[i].host, views[i].local_rank).uuid);
    }
    EXPECT_NO_THROW(check_distinct_gpus(choices));
  }
}

TEST(DevicePlacement, SlurmAllocationListingSeveralGpusGivesEachLocalRankOneEntry) {
  // srun without rank.sh: CUDA_VISIBLE_DEVICES=4,5,6,7 for every task; the
  // runtime renumbers them 0-3, so local rank 2 takes ordinal 2 = physical 6.
  std::vector<GpuView> views;
  for (int l = 0; l < 4; ++l) {
    GpuView v;
    v.rank = l;
    v.host = "node0";
    v.local_rank = l;
    v.local_size = 4;
    v.cuda_visible_devices = "4,5,6,7";
    v.visible = gpus("node0", {4, 5, 6, 7});
    views.push_back(v);
  }
  const auto choices = choose_all(views);
  EXPECT_EQ(choices[2].ordinal, 2);
  EXPECT_EQ(choices[2].gpu.pci_bus_id, "0000:16:00.0");
  EXPECT_NO_THROW(check_distinct_gpus(choices));
}

TEST(DevicePlacement, TwoRanksOfOneHostOnOneGpuAreRefusedNamingHostAndGpu) {
  // Two ranks per host, no launcher pinning, one GPU visible: both take it.
  const auto views = cluster(1, 2, /*gpus_per_host=*/1, /*pinned=*/false);
  const std::string e = error_of(views);
  EXPECT_NE(e.find("model.device"), std::string::npos) << e;
  EXPECT_NE(e.find("ranks 0 and 1 on node0 share one GPU"), std::string::npos) << e;
  EXPECT_NE(e.find("GPU-node0-0000"), std::string::npos) << e;
  EXPECT_NE(e.find("PCI 0000:10:00.0"), std::string::npos) << e;
}

TEST(DevicePlacement, PinnedToTheSamePhysicalGpuIsRefusedWhateverTheOrdinals) {
  // Each rank sees one GPU as ordinal 0, but it is the same UUID.
  auto views = cluster(1, 3, 3, /*pinned=*/true);
  views[2].cuda_visible_devices = "GPU-node0-0001";
  views[2].visible = gpus("node0", {1});
  const std::string e = error_of(views);
  EXPECT_NE(e.find("ranks 1 and 2 on node0 share one GPU"), std::string::npos) << e;
}

TEST(DevicePlacement, WithoutUuidsThePciIdTellsGpusApart) {
  auto views = cluster(1, 2, 2, /*pinned=*/true);
  for (auto& v : views) v.visible[0].uuid.clear();
  EXPECT_EQ(error_of(views), "");
  views[1].visible = views[0].visible;  // same PCI id
  EXPECT_NE(error_of(views).find("PCI 0000:10:00.0"), std::string::npos);
}

TEST(DevicePlacement, TheSameGpuNameOnTwoHostsIsNoConflict) {
  // One GPU per host, one rank per host: identical ordinals, different hosts.
  auto views = cluster(2, 1, 1, /*pinned=*/false);
  views[1].visible = views[0].visible;  // even identical identities: other host
  EXPECT_EQ(error_of(views), "");
}

TEST(DevicePlacement, MoreRanksThanVisibleGpusIsAnErrorNamingHostAndVisibility) {
  auto views = cluster(1, 4, /*gpus_per_host=*/2, /*pinned=*/false);
  EXPECT_EQ(choose_gpu(views[1]).ordinal, 1);
  try {
    choose_gpu(views[3]);
    FAIL() << "local rank 3 of 4 with 2 GPUs was placed";
  } catch (const InputError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("rank 3 on node0 (local rank 3 of 4)"), std::string::npos) << m;
    EXPECT_NE(m.find("2 GPU(s) visible (CUDA_VISIBLE_DEVICES unset)"), std::string::npos) << m;
  }
}

TEST(DevicePlacement, NoVisibleGpuNamesCudaVisibleDevices) {
  GpuView v;
  v.rank = 5;
  v.host = "node3";
  v.cuda_visible_devices = "";
  try {
    choose_gpu(v);
    FAIL() << "placed without a GPU";
  } catch (const InputError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("rank 5 on node3"), std::string::npos) << m;
    EXPECT_NE(m.find("0 GPU(s) visible with CUDA_VISIBLE_DEVICES="), std::string::npos) << m;
  }
}

TEST(DevicePlacement, AnExplicitOrdinalIsTakenAndChecked) {
  auto views = cluster(1, 2, 4, /*pinned=*/false);
  views[0].requested = 3;
  EXPECT_EQ(choose_gpu(views[0]).ordinal, 3);
  EXPECT_EQ(choose_gpu(views[0]).gpu.uuid, "GPU-node0-0003");
  views[0].requested = 4;
  EXPECT_THROW(choose_gpu(views[0]), InputError);
  // cuda:0 on both ranks of a host: one physical GPU, refused.
  views[0].requested = views[1].requested = 0;
  EXPECT_NE(error_of(views).find("share one GPU"), std::string::npos);
}

TEST(DevicePlacement, DescribeNamesHostOrdinalAndIdentity) {
  GpuChoice c{1, "node7", 1, GpuIdentity{"NVIDIA H200", "GPU-abc", "0000:3b:00.0"}};
  EXPECT_EQ(describe(c), "rank 1 on node7 uses cuda:1 (NVIDIA H200, GPU-abc, PCI 0000:3b:00.0)");
}

}  // namespace
}  // namespace sparc
