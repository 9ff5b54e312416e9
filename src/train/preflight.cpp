#include "train/preflight.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <set>

#include "core/error.h"
#include "core/file.h"
#include "data/jsonl_reader.h"

namespace sparc {
namespace {

constexpr std::uint64_t kMiB = 1024 * 1024;
constexpr std::uint64_t kMinCheckpointBytes = 16 * kMiB;

std::string join(const std::vector<std::string>& items) {
  std::string s;
  for (const auto& i : items) s += (s.empty() ? "" : ", ") + i;
  return s;
}

// The bytes of a model: the file, or the weight files of a directory.
std::uint64_t model_bytes(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return 0;
  if (!S_ISDIR(st.st_mode)) return std::uint64_t(st.st_size);
  std::uint64_t total = 0;
  if (DIR* d = ::opendir(path.c_str())) {
    while (const dirent* e = ::readdir(d)) {
      const std::string name = e->d_name;
      auto ends_with = [&](const std::string& s) {
        return name.size() >= s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0;
      };
      if (ends_with(".safetensors") || ends_with(".bin")) {
        struct stat f {};
        if (::stat((path + "/" + name).c_str(), &f) == 0 && S_ISREG(f.st_mode)) total += f.st_size;
      }
    }
    ::closedir(d);
  }
  return total;
}

std::string mib(std::uint64_t bytes) { return std::to_string((bytes + kMiB - 1) / kMiB) + " MiB"; }

}  // namespace

std::vector<std::string> check_run_inputs(const RunConfig& c) {
  std::vector<std::string> problems;
  const std::string& cfg = c.source_path;
  auto exists = [](const std::string& p) {
    struct stat st {};
    return ::stat(p.c_str(), &st) == 0;
  };
  if (!exists(c.model.path))
    problems.push_back(c.model.path + ": model not found (model.path in " + cfg + ")");
  if (!c.model.tokenizer.empty() && c.model.tokenizer != "bytes" && !exists(c.model.tokenizer))
    problems.push_back(c.model.tokenizer + ": tokenizer not found (model.tokenizer in " + cfg + ")");

  // Each data file once, with the keys that name it, in config order.
  struct DataFile {
    std::string format;
    std::vector<std::string> keys;
    std::vector<std::size_t> tasks;  // whose verbalizer its labels must be in
  };
  std::vector<std::string> order;
  std::map<std::string, DataFile> files;
  auto add = [&](const std::string& path, const std::string& key, const std::string& format,
                 std::size_t task) {
    if (path.empty()) return;
    auto [it, fresh] = files.try_emplace(path, DataFile{format, {}, {}});
    if (fresh) order.push_back(path);
    it->second.keys.push_back(key);
    if (task != std::size_t(-1)) it->second.tasks.push_back(task);
  };
  for (std::size_t i = 0; i < c.tasks.size(); ++i) {
    const std::string t = "tasks[" + std::to_string(i) + "].";
    add(c.tasks[i].train, t + "train", c.tasks[i].format, i);
    add(c.tasks[i].validation, t + "validation", c.tasks[i].format, i);
    add(c.tasks[i].test, t + "test", c.tasks[i].format, i);
  }
  add(c.eval.ppl_text, "eval.ppl_text", "", std::size_t(-1));

  for (const std::string& path : order) {
    const DataFile& f = files.at(path);
    const std::string keys = " (" + join(f.keys) + ")";
    try {
      if (f.format.empty()) {  // plain text, one line per text
        (void)read_text_file(path);
        continue;
      }
      const auto examples = read_examples(path, f.format);
      for (std::size_t task : f.tasks) {
        const auto& verbalizer = c.tasks[task].verbalizer;
        std::set<std::string> labels;
        for (const auto& [label, word] : verbalizer) labels.insert(label);
        std::vector<std::string> known;
        for (const auto& [label, word] : verbalizer) known.push_back(label);
        auto bad = std::find_if(examples.begin(), examples.end(), [&](const Example& ex) {
          return !ex.label.empty() && labels.count(ex.label) == 0;
        });
        if (bad != examples.end()) {
          problems.push_back(bad->source + ": label '" + bad->label +
                             "' is not in the verbalizer of tasks[" + std::to_string(task) +
                             "] (expected one of: " + join(known) + ")" + keys);
          break;
        }
      }
    } catch (const InputError& e) {
      problems.push_back(e.what() + keys);
    }
  }
  return problems;
}

std::uint64_t checkpoint_bytes_estimate(const RunConfig& c) {
  if (c.trains_weights()) return std::max(kMinCheckpointBytes, 3 * model_bytes(c.model.path));
  return kMinCheckpointBytes;
}

std::vector<std::string> check_run_directory(const std::string& dir, std::uint64_t bytes_needed,
                                             const std::string& role) {
  const std::string what = " (" + role + ")";
  if (dir.empty()) return {role + ": empty path"};
  try {
    make_directories(dir);
  } catch (const InputError& e) {
    return {e.what() + what};
  }
  // Create, write and remove a file: access(W_OK) says yes to root even on
  // a directory nobody may write, and nothing but a write finds a read-only mount.
  const std::string probe = dir + "/.sparc-write-probe-" + std::to_string(::getpid());
  const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
  if (fd < 0) return {dir + ": not writable: " + errno_text("cannot create a file") + what};
  const bool wrote = ::write(fd, "x", 1) == 1;
  const std::string write_error = wrote ? "" : errno_text("write failed");
  ::close(fd);
  ::unlink(probe.c_str());
  if (!wrote) return {dir + ": not writable: " + write_error + what};

  struct statvfs fs {};
  if (bytes_needed > 0 && ::statvfs(dir.c_str(), &fs) == 0) {
    const std::uint64_t free_bytes = std::uint64_t(fs.f_bavail) * fs.f_frsize;
    if (free_bytes < bytes_needed)
      return {dir + ": " + mib(free_bytes) + " free on its file system, but a checkpoint of this " +
              "run needs about " + mib(bytes_needed) + what};
  }
  return {};
}

}  // namespace sparc
