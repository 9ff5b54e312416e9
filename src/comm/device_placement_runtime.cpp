// The facts device placement needs, from the CUDA runtime (visible GPUs and
// their identities) and MPI (local rank, every rank's choice). Compiled
// everywhere; the CUDA part only with SPARC_WITH_CUDA.
#include <mpi.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <spdlog/spdlog.h>

#include "comm/agreement.h"
#include "comm/comm_internal.h"
#include "comm/device_placement.h"

#ifdef SPARC_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

namespace sparc {
namespace {

std::optional<int> g_placed;

std::string host_name() {
  char name[256] = {};
  if (gethostname(name, sizeof name - 1) != 0) return "unknown-host";
  return name;
}

// Fields joined by a byte that no host name, GPU name or message holds.
constexpr char kSep = '\x1f';

std::string pack(const std::vector<std::string>& fields) {
  std::string out;
  for (size_t i = 0; i < fields.size(); ++i) out += (i ? std::string(1, kSep) : "") + fields[i];
  return out;
}

std::vector<std::string> unpack(const std::string& text) {
  std::vector<std::string> fields(1);
  for (char c : text) {
    if (c == kSep)
      fields.emplace_back();
    else
      fields.back() += c;
  }
  return fields;
}

// Every rank's string, in rank order.
std::vector<std::string> all_gather_strings(MPI_Comm comm, const std::string& mine) {
  int size = 1;
  MPI_Comm_size(comm, &size);
  int len = int(mine.size());
  std::vector<int> lens(size), offsets(size);
  comm_detail::check_mpi(MPI_Allgather(&len, 1, MPI_INT, lens.data(), 1, MPI_INT, comm),
                         "MPI_Allgather");
  int total = 0;
  for (int r = 0; r < size; ++r) {
    offsets[r] = total;
    total += lens[r];
  }
  std::string all(total, '\0');
  comm_detail::check_mpi(MPI_Allgatherv(mine.data(), len, MPI_CHAR, all.data(), lens.data(),
                                        offsets.data(), MPI_CHAR, comm),
                         "MPI_Allgatherv");
  std::vector<std::string> out(size);
  for (int r = 0; r < size; ++r) out[r] = all.substr(offsets[r], lens[r]);
  return out;
}

}  // namespace

std::vector<GpuIdentity> visible_gpus() {
  std::vector<GpuIdentity> gpus;
#ifdef SPARC_WITH_CUDA
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {  // no driver or no device
    (void)cudaGetLastError();
    return gpus;
  }
  for (int d = 0; d < count; ++d) {
    GpuIdentity id;
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, d) == cudaSuccess) {
      id.name = prop.name;
      // nvidia-smi's form: GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx
      const auto* b = reinterpret_cast<const unsigned char*>(prop.uuid.bytes);
      char uuid[64];
      std::snprintf(uuid, sizeof uuid,
                    "GPU-%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
                    b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11],
                    b[12], b[13], b[14], b[15]);
      id.uuid = uuid;
    }
    char pci[32] = {};
    if (cudaDeviceGetPCIBusId(pci, sizeof pci, d) == cudaSuccess) id.pci_bus_id = pci;
    (void)cudaGetLastError();
    gpus.push_back(id);
  }
#endif
  return gpus;
}

GpuChoice place_rank_on_gpu(int requested) {
  comm_detail::ensure_mpi();
  MPI_Comm world = comm_detail::dup_world();
  GpuView view;
  MPI_Comm_rank(world, &view.rank);
  MPI_Comm node = MPI_COMM_NULL;
  comm_detail::check_mpi(
      MPI_Comm_split_type(world, MPI_COMM_TYPE_SHARED, view.rank, MPI_INFO_NULL, &node),
      "MPI_Comm_split_type");
  MPI_Comm_rank(node, &view.local_rank);
  MPI_Comm_size(node, &view.local_size);
  MPI_Comm_free(&node);
  view.host = host_name();
  if (const char* cvd = std::getenv("CUDA_VISIBLE_DEVICES")) view.cuda_visible_devices = cvd;
  view.visible = visible_gpus();
  view.requested = requested;

  // Choose locally; exchange either the choice or the error, so a rank
  // without a GPU stops every rank with its message instead of a hang.
  GpuChoice mine;
  std::string error;
  try {
    mine = choose_gpu(view);
  } catch (const InputError& e) {
    error = e.what();
  }
  const auto records = all_gather_strings(
      world, pack({error, mine.host, std::to_string(mine.ordinal), mine.gpu.name, mine.gpu.uuid,
                   mine.gpu.pci_bus_id}));
  MPI_Comm_free(&world);
  std::vector<GpuChoice> all;
  for (size_t r = 0; r < records.size(); ++r) {
    const auto f = unpack(records[r]);
    if (f.size() != 6) throw std::runtime_error("place_rank_on_gpu: malformed record");
    if (!f[0].empty()) throw AgreedError("", f[0]);  // the message names the rank
    all.push_back(GpuChoice{int(r), f[1], std::stoi(f[2]), GpuIdentity{f[3], f[4], f[5]}});
  }
  try {
    check_distinct_gpus(all);
  } catch (const InputError& e) {
    throw AgreedError("", e.what());
  }
#ifdef SPARC_WITH_CUDA
  if (cudaSetDevice(mine.ordinal) != cudaSuccess)
    throw std::runtime_error(std::string("cudaSetDevice: ") +
                             cudaGetErrorString(cudaGetLastError()));
#endif
  g_placed = mine.ordinal;
  spdlog::info("device: {}", describe(mine));
  return mine;
}

std::optional<int> placed_gpu() { return g_placed; }

}  // namespace sparc
