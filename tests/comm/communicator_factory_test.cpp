// The backend choice of comm.backend: auto follows the model's device, a
// binary without CUDA refuses cuda and nccl with a message that says how to
// build one that has it, and a test backend gets exactly what it is chosen for.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <fstream>
#include <string>

#include "comm/communicator.h"
#include "comm/communicator_factory.h"
#include "comm/recording_communicator.h"
#include "core/error.h"

namespace sparc {
namespace {

std::string input_error(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

TEST(CommunicatorFactory, AutoIsMpiForACpuModel) {
  EXPECT_EQ(resolve_backend("auto", /*model_on_cuda=*/false), "mpi");
  EXPECT_EQ(resolve_backend("mpi", false), "mpi");
  auto comm = make_communicator("auto", false);
  EXPECT_EQ(comm->backend(), "mpi");
}

TEST(CommunicatorFactory, UnknownBackendIsAnInputErrorListingTheChoices) {
  const std::string e = input_error([] { resolve_backend("gloo", false); });
  EXPECT_NE(e.find("comm.backend: 'gloo': expected auto, mpi or nccl"), std::string::npos) << e;
}

TEST(CommunicatorFactory, NcclOrCudaWithoutCudaLibTorchSaysWhatIsMissingAndHowToBuild) {
  if (libtorch_has_cuda() && torch::cuda::device_count() > 0)
    GTEST_SKIP() << "this LibTorch has CUDA and a GPU: the refusal does not apply";
  for (const auto& fn : std::vector<std::function<void()>>{
           [] { resolve_backend("nccl", false); },
           [] { resolve_backend("auto", /*model_on_cuda=*/true); },
           [] { make_communicator("nccl", true); }}) {
    const std::string e = input_error(fn);
    EXPECT_EQ(e.rfind("comm.backend: ", 0), 0u) << e;
    EXPECT_NE(e.find("cmake_prefix_path"), std::string::npos) << e;
    EXPECT_NE(e.find("tests/gpu/run.sh"), std::string::npos) << e;
  }
  const std::string e = input_error([] { require_cuda("model.device"); });
  EXPECT_EQ(e.rfind("model.device: needs", 0), 0u) << e;
  if (!libtorch_has_cuda()) {
    EXPECT_NE(e.find("LibTorch " TORCH_VERSION " built without CUDA"), std::string::npos) << e;
    EXPECT_NE(e.find("-DSPARC_WITH_CUDA=ON"), std::string::npos) << e;
  }
}

TEST(CommunicatorFactory, AStartUpCheckReportsTheOneProblemOfDeviceAndBackend) {
  EXPECT_EQ(check_device_and_backend("cpu", "auto"), "");
  EXPECT_EQ(check_device_and_backend("cpu", "mpi"), "");
  EXPECT_NE(check_device_and_backend("cpu", "gloo").find("expected auto, mpi or nccl"),
            std::string::npos);
  if (libtorch_has_cuda() && torch::cuda::device_count() > 0) {
    EXPECT_EQ(resolve_device("auto"), "cuda");
    EXPECT_NE(check_device_and_backend("cuda", "mpi").find("mpi carries CPU tensors only"),
              std::string::npos);
    return;
  }
  EXPECT_EQ(resolve_device("auto"), "cpu");  // no CUDA: auto stays on the CPU
  EXPECT_EQ(check_device_and_backend("auto", "auto"), "");
  EXPECT_EQ(check_device_and_backend("cpu", "nccl").rfind("comm.backend: needs", 0), 0u);
  // The device's problem alone, not the backend's that follows from it.
  for (const char* backend : {"auto", "nccl", "mpi"}) {
    const std::string e = check_device_and_backend("cuda:1", backend);
    EXPECT_EQ(e.rfind("model.device: needs", 0), 0u) << e;
    EXPECT_EQ(e.find("comm.backend"), std::string::npos) << e;
  }
}

TEST(CommunicatorFactory, LibTorchHasCudaExactlyWhenItsCudaLibraryIsLoaded) {
  // Independent evidence: a CUDA LibTorch maps libc10_cuda.so into the
  // process; Debian's CPU LibTorch (this machine) has none.
  std::ifstream maps("/proc/self/maps");
  std::string line;
  bool mapped = false;
  while (std::getline(maps, line)) mapped = mapped || line.find("libc10_cuda") != std::string::npos;
  EXPECT_EQ(libtorch_has_cuda(), mapped);
}

TEST(CommunicatorFactory, ATestBackendIsMadeByItsFactoryAndCanBeRemoved) {
  int made = 0;
  register_test_backend("recording", [&made] {
    ++made;
    return std::make_unique<test::RecordingCommunicator>("recording", make_mpi_communicator());
  });
  EXPECT_EQ(resolve_backend("recording", false), "recording");
  auto comm = make_communicator("recording", /*model_on_cuda=*/false);
  EXPECT_EQ(made, 1);
  ASSERT_EQ(comm->backend(), "recording");
  torch::Tensor t = torch::ones({3});
  comm->all_reduce(t, ReduceOp::kSum, CommTag::kGrad);
  EXPECT_TRUE(torch::equal(t, torch::full({3}, double(comm->size()))));
  auto* rec = dynamic_cast<test::RecordingCommunicator*>(comm.get());
  ASSERT_NE(rec, nullptr);
  EXPECT_EQ(rec->total_calls(CommTag::kGrad), 1);
  EXPECT_EQ(rec->total_calls(CommTag::kEval), 0);
  register_test_backend("recording", nullptr);
  EXPECT_THROW(resolve_backend("recording", false), InputError);
  EXPECT_THROW(register_test_backend("mpi", [] { return make_mpi_communicator(); }),
               std::invalid_argument);
}

}  // namespace
}  // namespace sparc
