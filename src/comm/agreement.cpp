#include "comm/agreement.h"

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <vector>

#include "core/error.h"
#include "core/file.h"
#include "core/hash.h"

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

std::uint64_t model_fingerprint(const std::string& path) {
  auto file_part = [](const std::string& p, std::uint64_t h, bool whole_header) {
    struct stat st {};
    if (::stat(p.c_str(), &st) != 0) return h;
    h = fnv1a(std::to_string(st.st_size), h);
    std::ifstream in(p, std::ios::binary);
    std::string head(256, '\0');
    in.read(head.data(), 256);
    head.resize(size_t(in.gcount()));
    if (whole_header && head.size() >= 8) {  // safetensors: the whole JSON header
      std::uint64_t n = 0;
      std::memcpy(&n, head.data(), 8);
      n = std::min<std::uint64_t>(n, 100u << 20);
      std::string json(n, '\0');
      in.seekg(8);
      in.read(json.data(), std::streamsize(n));
      json.resize(size_t(in.gcount()));
      return fnv1a(json, h);
    }
    return fnv1a(head, h);
  };
  if (!is_directory(path)) return file_part(path, fnv1a("llama2c"), false);
  std::uint64_t h = fnv1a("hf");
  if (file_exists(path + "/config.json")) h = fnv1a(read_text_file(path + "/config.json"), h);
  std::vector<std::string> names;
  if (DIR* d = ::opendir(path.c_str())) {
    while (dirent* e = ::readdir(d)) {
      std::string n = e->d_name;
      if (n.size() > 12 && n.compare(n.size() - 12, 12, ".safetensors") == 0) names.push_back(n);
    }
    ::closedir(d);
  }
  std::sort(names.begin(), names.end());
  for (const auto& n : names) h = file_part(path + "/" + n, fnv1a(n, h), true);
  return h;
}

}  // namespace sparc
