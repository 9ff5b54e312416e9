#include "comm/agreement.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"

namespace sparc {
namespace {
// Room for every problem of a start-up check (a config with many mistakes).
constexpr std::int64_t kMessageBytes = 16384;
}

void agree_on_errors(Communicator& comm, const std::string& local_error) {
  auto flag = torch::tensor({local_error.empty() ? 0 : 1}, torch::kInt32);
  comm.all_reduce(flag, ReduceOp::kMax, CommTag::kControl);
  if (flag.item<int>() == 0) return;
  // Someone failed: share the messages so every rank can name the cause.
  auto mine = torch::zeros({kMessageBytes}, torch::kUInt8);
  std::memcpy(mine.data_ptr(), local_error.data(),
              std::min<size_t>(local_error.size(), kMessageBytes - 1));
  auto all = comm.all_gather(mine, CommTag::kControl).view({comm.size(), kMessageBytes});
  for (int r = 0; r < comm.size(); ++r) {
    const char* text = reinterpret_cast<const char*>(all[r].data_ptr());
    if (text[0] != '\0') {
      std::string message(text, strnlen(text, kMessageBytes));
      throw AgreedError(comm.size() > 1 ? "rank " + std::to_string(r) : "", message);
    }
  }
}

void agree_on_value(Communicator& comm, const std::string& what, std::uint64_t value) {
  auto mine = torch::tensor({std::int64_t(value)}, torch::kInt64);
  auto all = comm.all_gather(mine, CommTag::kControl);
  std::string differ;
  for (int r = 1; r < comm.size(); ++r)
    if (all[r].item<std::int64_t>() != all[0].item<std::int64_t>())
      differ += (differ.empty() ? "" : ", ") + std::to_string(r);
  if (!differ.empty())
    throw AgreedError(what, "differs between ranks: rank(s) " + differ +
                               " disagree with rank 0 (every rank must run the same " + what +
                               ")");
}

}  // namespace sparc
