// The backend choice of comm.backend and the checks that a binary can run it.
#include "comm/communicator_factory.h"

#include <ATen/detail/CUDAHooksInterface.h>
#include <torch/torch.h>
#include <torch/version.h>

#include <cstdlib>
#include <map>
#include <stdexcept>

#include "comm/communicator.h"
#include "comm/device_placement.h"
#include "core/error.h"

namespace sparc {
namespace {

std::map<std::string, CommunicatorFactory>& test_backends() {
  static std::map<std::string, CommunicatorFactory> backends;
  return backends;
}

// How to get a binary that has what this one lacks (tests/gpu/run.sh does it).
const char* kBuildHint =
    "build sparc against a CUDA LibTorch: cmake -S . -B build-gpu "
    "-DCMAKE_PREFIX_PATH=\"$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')\" "
    "-DSPARC_WITH_CUDA=ON -DSPARC_WITH_NCCL=ON with NCCL_HOME set to NCCL's folder "
    "(docs/distributed.md; tests/gpu/run.sh does this on a GPU machine)";

}  // namespace

bool libtorch_has_cuda() {
  // A CPU-only LibTorch has only the default hooks, whose version query throws.
  try {
    (void)at::detail::getCUDAHooks().versionCUDART();
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

void require_cuda(const std::string& where) {
  if (!libtorch_has_cuda())
    throw InputError(where, std::string("needs CUDA, but this sparc links LibTorch ") +
                                TORCH_VERSION + " built without CUDA; " + kBuildHint);
  if (torch::cuda::device_count() == 0)
    throw InputError(where, "needs a GPU, but none is visible to this process (CUDA_VISIBLE_DEVICES=" +
                                std::string(std::getenv("CUDA_VISIBLE_DEVICES")
                                                ? std::getenv("CUDA_VISIBLE_DEVICES")
                                                : "unset") +
                                ")");
}

void require_nccl(const std::string& where) {
#ifndef SPARC_WITH_NCCL
  throw InputError(where, std::string("nccl needs a sparc built with NCCL (SPARC_WITH_NCCL=OFF "
                                      "here) and a CUDA LibTorch; ") +
                              kBuildHint);
#else
  require_cuda(where);
#endif
}

std::string resolve_backend(const std::string& backend, bool model_on_cuda) {
  if (backend == "auto") return model_on_cuda ? resolve_backend("nccl", true) : "mpi";
  if (backend == "mpi") return backend;
  if (backend == "nccl") {
    require_nccl("comm.backend");
    return backend;
  }
  if (test_backends().count(backend)) return backend;
  throw InputError("comm.backend", "'" + backend + "': expected auto, mpi or nccl");
}

std::string resolve_device(const std::string& device) {
  if (device != "auto") return device;
  return libtorch_has_cuda() && torch::cuda::device_count() > 0 ? "cuda" : "cpu";
}

std::string check_device_and_backend(const std::string& device, const std::string& backend) {
  const std::string resolved = resolve_device(device);
  const bool on_cuda = resolved.rfind("cuda", 0) == 0;
  try {
    if (on_cuda) require_cuda("model.device");
    const std::string chosen = resolve_backend(backend, on_cuda);
    // The MPI backend moves CPU tensors only.
    if (on_cuda && chosen == "mpi")
      throw InputError("comm.backend", "mpi carries CPU tensors only; model.device " + resolved +
                                           " needs nccl (or auto)");
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

std::unique_ptr<Communicator> make_communicator(const std::string& backend, bool model_on_cuda) {
  const std::string chosen = resolve_backend(backend, model_on_cuda);
  if (chosen == "mpi") return make_mpi_communicator();
#ifdef SPARC_WITH_NCCL
  if (chosen == "nccl") return make_nccl_communicator();
#endif
  return test_backends().at(chosen)();
}

DataPlane::DataPlane() = default;
DataPlane::DataPlane(DataPlane&&) noexcept = default;
DataPlane& DataPlane::operator=(DataPlane&&) noexcept = default;
DataPlane::~DataPlane() = default;

DataPlane open_data_plane(const std::string& device, const std::string& backend,
                          double timeout_s) {
  DataPlane plane;
  plane.device = resolve_device(device);
  const bool on_cuda = plane.device.rfind("cuda", 0) == 0;
  if (on_cuda) {  // before NCCL, whose communicator uses the GPU chosen here
    const auto colon = plane.device.find(':');
    place_rank_on_gpu(colon == std::string::npos ? -1 : std::stoi(plane.device.substr(colon + 1)));
  }
  if (resolve_backend(backend, on_cuda) != "mpi") {
    plane.comm = make_communicator(backend, on_cuda);
    plane.comm->set_timeout(timeout_s);
  }
  return plane;
}

void register_test_backend(const std::string& name, CommunicatorFactory factory) {
  if (name == "auto" || name == "mpi" || name == "nccl")
    throw std::invalid_argument("register_test_backend: '" + name + "' is a real backend");
  if (factory)
    test_backends()[name] = std::move(factory);
  else
    test_backends().erase(name);
}

}  // namespace sparc
