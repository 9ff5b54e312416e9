// The pure part of device placement: choosing a rank's GPU and refusing two
// ranks of one host on the same physical GPU.
#include "comm/device_placement.h"

#include <map>

#include "core/error.h"

namespace sparc {
namespace {

std::string visible_text(const GpuView& v) {
  std::string text = std::to_string(v.visible.size()) + " GPU(s) visible";
  text += v.cuda_visible_devices ? " with CUDA_VISIBLE_DEVICES=" + *v.cuda_visible_devices
                                 : " (CUDA_VISIBLE_DEVICES unset)";
  return text;
}

std::string where(const GpuView& v) {
  return "rank " + std::to_string(v.rank) + " on " + v.host + " (local rank " +
         std::to_string(v.local_rank) + " of " + std::to_string(v.local_size) + ")";
}

}  // namespace

GpuChoice choose_gpu(const GpuView& v) {
  const int n = int(v.visible.size());
  if (n == 0) throw InputError("model.device", where(v) + " needs a GPU but has " + visible_text(v));
  int ordinal = 0;
  if (v.requested >= 0) {
    if (v.requested >= n)
      throw InputError("model.device", where(v) + " asks for cuda:" + std::to_string(v.requested) +
                                           " but has " + visible_text(v));
    ordinal = v.requested;
  } else if (n > 1) {
    // Several GPUs and no launcher's pick: one per node-local rank.
    if (v.local_rank >= n)
      throw InputError("model.device",
                       where(v) + " has no GPU of its own: " + std::to_string(v.local_size) +
                           " ranks on " + v.host + " but " + visible_text(v) +
                           " (start at most one rank per GPU)");
    ordinal = v.local_rank;
  }
  return GpuChoice{v.rank, v.host, ordinal, v.visible[ordinal]};
}

void check_distinct_gpus(const std::vector<GpuChoice>& all) {
  // (host, GPU key) -> the first rank seen on it.
  std::map<std::pair<std::string, std::string>, const GpuChoice*> seen;
  for (const GpuChoice& c : all) {
    if (c.gpu.key().empty()) continue;  // nothing to compare it by
    auto [it, fresh] = seen.emplace(std::make_pair(c.host, c.gpu.key()), &c);
    if (fresh) continue;
    const GpuChoice& first = *it->second;
    throw InputError("model.device",
                     "ranks " + std::to_string(first.rank) + " and " + std::to_string(c.rank) +
                         " on " + c.host + " share one GPU: " + describe(first) + "; " +
                         describe(c) +
                         " (give each rank its own GPU: launch/rank.sh, Slurm's "
                         "--gpus-per-task, or CUDA_VISIBLE_DEVICES)");
  }
}

std::string describe(const GpuChoice& c) {
  std::string text = "rank " + std::to_string(c.rank) + " on " + c.host + " uses cuda:" +
                     std::to_string(c.ordinal) + " (" +
                     (c.gpu.name.empty() ? "unnamed GPU" : c.gpu.name);
  if (!c.gpu.uuid.empty()) text += ", " + c.gpu.uuid;
  if (!c.gpu.pci_bus_id.empty()) text += ", PCI " + c.gpu.pci_bus_id;
  return text + ")";
}

}  // namespace sparc
