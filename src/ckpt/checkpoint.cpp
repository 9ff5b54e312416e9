// Checkpoint files on disk: atomic writes, checksums, the directory of
// checkpoints with its `latest` pointer and retention, and the stop signals.
#include "ckpt/checkpoint.h"

#include <dirent.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <functional>

#include "ckpt/verify.h"
#include "core/error.h"
#include "core/fault.h"
#include "core/file.h"
#include "core/storage.h"

namespace sparc {
namespace {

// ---- files --------------------------------------------------------------------

void fsync_path(const std::string& path, bool directory) {
  int fd = ::open(path.c_str(), directory ? O_RDONLY | O_DIRECTORY : O_RDONLY);
  if (fd < 0) throw StorageError(path + ": " + errno_text("open"));
  const int rc = ::fsync(fd);
  const std::string why = rc != 0 ? errno_text("fsync") : "";
  ::close(fd);
  if (rc != 0) throw StorageError(path + ": " + why);
}

void rename_or_throw(const std::string& from, const std::string& to) {
  if (std::rename(from.c_str(), to.c_str()) != 0)
    throw StorageError(to + ": " + errno_text("rename from " + from));
}

// Writes a small text file atomically: tmp, fsync, rename, fsync the
// directory. A failure removes the tmp file and leaves `path` as it was.
void write_atomically(const std::string& dir, const std::string& name, const std::string& text) {
  const std::string path = dir + "/" + name, tmp = path + ".tmp";
  try {
    write_file(tmp, text);
    fsync_path(tmp, false);
    rename_or_throw(tmp, path);
  } catch (...) {
    ::unlink(tmp.c_str());  // a file only: never a directory that happens to have its name
    throw;
  }
  fsync_path(dir, true);
}


// Sort key of a checkpoint file name: (global step, end-of-task after mid-task).
bool parse_name(const std::string& name, std::int64_t& step, int& end) {
  long long s = 0;
  int n = 0;
  if (std::sscanf(name.c_str(), "ckpt-%lld%n", &s, &n) != 1) return false;
  const std::string rest = name.substr(size_t(n));
  if (rest == ".h5") end = 0;
  else if (rest == "-end.h5") end = 1;
  else return false;
  step = s;
  return true;
}

volatile std::sig_atomic_t g_stop_signal = 0;
// The first signal asks for a stop at the next step's end; a second one (an
// impatient Ctrl-C) ends the process at once. Only async-signal-safe calls.
extern "C" void on_stop_signal(int sig) {
  if (g_stop_signal != 0) {
    std::signal(sig, SIG_DFL);
    std::raise(sig);
    return;
  }
  g_stop_signal = sig;
}

}  // namespace

// ---- checksums --------------------------------------------------------------------

std::string sha256_file(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) throw InputError(path, errno_text("open"));
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
  std::vector<unsigned char> buf(1 << 20);
  size_t n = 0;
  while ((n = std::fread(buf.data(), 1, buf.size(), f)) > 0) EVP_DigestUpdate(ctx, buf.data(), n);
  const bool failed = std::ferror(f) != 0;
  std::fclose(f);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx, digest, &len);
  EVP_MD_CTX_free(ctx);
  if (failed) throw InputError(path, "read failed while computing its checksum");
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) out += hex[digest[i] >> 4], out += hex[digest[i] & 15];
  return out;
}

std::string verify_checkpoint(const std::string& path) {
  if (!file_exists(path)) return "no such file";
  const std::string sum_path = path + ".sha256";
  if (!file_exists(sum_path)) return "no checksum file " + sum_path + " (its write did not finish)";
  struct stat st {};
  std::string recorded, actual;
  try {
    if (::stat(sum_path.c_str(), &st) == 0 && st.st_size > 4096)
      throw InputError(sum_path, std::to_string(st.st_size) + " bytes: not a checksum file");
    recorded = parse_checksum_file(read_text_file(sum_path), sum_path);
    actual = sha256_file(path);
  } catch (const InputError& e) {
    return e.what();
  }
  if (recorded != actual)
    return "checksum mismatch (SHA-256 " + actual.substr(0, 16) + "... , recorded " +
           recorded.substr(0, 16) + "...): the file is damaged or truncated";
  // The digest matches; the header must still be one libhdf5 can be given.
  std::uint8_t head[kHdf5HeaderBytes];
  std::size_t got = 0;
  if (std::FILE* f = std::fopen(path.c_str(), "rb")) {
    got = std::fread(head, 1, sizeof head, f);
    std::fclose(f);
  }
  if (::stat(path.c_str(), &st) != 0) return errno_text("stat");
  return check_hdf5_header(head, got, std::uint64_t(st.st_size));
}

// ---- the directory -------------------------------------------------------------------

CheckpointDir::CheckpointDir(std::string dir, int keep) : dir_(std::move(dir)), keep_(keep) {}

std::string CheckpointDir::save(const TrainingState& state, bool task_end, int rank) {
  char name[64];
  std::snprintf(name, sizeof name, "ckpt-%08lld%s.h5", (long long)state.global_step,
                task_end ? "-end" : "");
  const std::string path = dir_ + "/" + name, tmp = path + ".tmp";
  const std::string sum_name = std::string(name) + ".sha256", sum = dir_ + "/" + sum_name;
  const std::int64_t count = ++writes_;
  // What `latest` names now: it must name the same file after a failure.
  std::string previous;
  if (file_exists(dir_ + "/latest")) {
    try {
      previous = read_text_file(dir_ + "/latest");
      while (!previous.empty() && (previous.back() == '\n' || previous.back() == '\r')) previous.pop_back();
    } catch (const InputError&) {
    }
  }
  // Until `latest` names the new file, a failure removes everything this
  // write created (a full disk is not left fuller) and leaves `latest` and
  // every older checkpoint alone: retention runs only after a success.
  bool renamed = false;
  try {
    make_directories(dir_);
    write_checkpoint_file(tmp, state, [&] { fault_point("checkpoint-write", count, rank); });
    fsync_path(tmp, false);
    const std::string digest = sha256_file(tmp);
    std::remove(sum.c_str());  // an old pair with this name is no longer valid
    rename_or_throw(tmp, path);
    renamed = true;
    fsync_path(dir_, true);
    write_atomically(dir_, sum_name, digest + "  " + name + "\n");
    write_atomically(dir_, "latest", std::string(name) + "\n");
  } catch (const std::exception& e) {  // StorageError, or InputError (mkdir, reading back)
    ::unlink(tmp.c_str());
    // Only the directory's fsync after `latest` was renamed can fail with
    // `latest` naming the new file: then the new pair stays, as it names it.
    std::string now;
    try {
      now = read_text_file(dir_ + "/latest");
    } catch (const InputError&) {
    }
    if (previous != name && now == std::string(name) + "\n")
      throw StorageError(std::string(e.what()) + " (" + path + " and `latest` are written, but " +
                         "their directory entries may not be on disk)");
    if (renamed && previous != name) {
      ::unlink(path.c_str());
      ::unlink(sum.c_str());
    }
    throw StorageError(std::string(e.what()) + " (checkpoint not written; " +
                       (previous.empty() ? std::string("no earlier checkpoint in ") + dir_
                                         : dir_ + "/latest still names " + previous) +
                       ")");
  }
  // Keep the newest K; drop what an interrupted write left behind.
  auto files = list();
  for (size_t i = size_t(keep_); i < files.size(); ++i) {
    std::remove(files[i].c_str());
    std::remove((files[i] + ".sha256").c_str());
  }
  if (DIR* d = ::opendir(dir_.c_str())) {
    while (dirent* e = ::readdir(d)) {
      const std::string n = e->d_name;
      if (n.size() > 4 && n.compare(n.size() - 4, 4, ".tmp") == 0) std::remove((dir_ + "/" + n).c_str());
    }
    ::closedir(d);
  }
  return path;
}

std::vector<std::string> CheckpointDir::list() const {
  std::vector<std::tuple<std::int64_t, int, std::string>> found;
  if (DIR* d = ::opendir(dir_.c_str())) {
    while (dirent* e = ::readdir(d)) {
      std::int64_t step = 0;
      int end = 0;
      if (parse_name(e->d_name, step, end)) found.emplace_back(step, end, e->d_name);
    }
    ::closedir(d);
  }
  std::sort(found.begin(), found.end(), [](const auto& a, const auto& b) { return a > b; });
  std::vector<std::string> out;
  for (const auto& f : found) out.push_back(dir_ + "/" + std::get<2>(f));
  return out;
}

std::string CheckpointDir::newest_valid(std::vector<std::string>* skipped) const {
  for (const auto& path : list()) {
    const std::string why = verify_checkpoint(path);
    if (why.empty()) return path;
    if (skipped) skipped->push_back(path + ": " + why);
  }
  return "";
}

// ---- signals -------------------------------------------------------------------------

void install_stop_signal_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
}

bool stop_signal_received() { return g_stop_signal != 0; }

}  // namespace sparc
