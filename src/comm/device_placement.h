// Which GPU each rank uses (issue 18). The launcher usually decides
// (launch/rank.sh or Slurm leave one GPU in CUDA_VISIBLE_DEVICES); where a
// rank sees several, it takes the one of its node-local rank. Two ranks of
// one host on the same physical GPU (same UUID, else same PCI id) is a
// start-up error on every rank. The choice itself is pure, so it is tested
// without a GPU; place_rank_on_gpu() gathers the facts (MPI, CUDA runtime).
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace sparc {

struct GpuIdentity {
  std::string name;        // "NVIDIA H200"
  std::string uuid;        // "GPU-8f6c2a1e-...", as nvidia-smi -L prints it; empty if unknown
  std::string pci_bus_id;  // "0000:3b:00.0"; empty if unknown
  // What tells two physical GPUs apart: the UUID, else the PCI id.
  std::string key() const { return !uuid.empty() ? uuid : pci_bus_id; }
};

// What one rank knows before choosing.
struct GpuView {
  int rank = 0;
  std::string host;
  int local_rank = 0;  // among the ranks of its host (MPI_Comm_split_type shared memory)
  int local_size = 1;
  std::optional<std::string> cuda_visible_devices;  // unset: nullopt
  std::vector<GpuIdentity> visible;                 // CUDA ordinals 0, 1, ... in order
  int requested = -1;                               // cuda:N in the config; -1: cuda or auto
};

struct GpuChoice {
  int rank = 0;
  std::string host;
  int ordinal = 0;  // the CUDA ordinal in this rank's process
  GpuIdentity gpu;
};

// The ordinal one rank uses: the requested one; else 0 when one GPU is
// visible (the launcher's assignment, or a one-GPU host); else the
// local rank's. Throws InputError("model.device", ...) naming the host and
// what is visible when there is no such GPU.
GpuChoice choose_gpu(const GpuView& view);

// Throws InputError("model.device", ...) naming the ranks, their host and the
// GPU when two ranks of one host use the same physical GPU.
void check_distinct_gpus(const std::vector<GpuChoice>& all);

// "rank 1 on node7 uses cuda:1 (NVIDIA H200, GPU-8f6c..., PCI 0000:3b:00.0)"
std::string describe(const GpuChoice& choice);

// The GPUs this process sees, from the CUDA runtime (empty in a binary
// without SPARC_WITH_CUDA, or when the driver reports none).
std::vector<GpuIdentity> visible_gpus();

// Collective over MPI_COMM_WORLD: every rank chooses (requested: cuda:N's N,
// or -1), the choices are exchanged, and a rank's error or a shared GPU
// throws the same AgreedError on every rank. Then makes the ordinal the
// calling thread's current CUDA device and logs the choice.
GpuChoice place_rank_on_gpu(int requested);

// The ordinal of this process's last place_rank_on_gpu(), if any: the NCCL
// communicator uses it, so the model and the collectives share one GPU.
std::optional<int> placed_gpu();

}  // namespace sparc
