#include "model/fingerprint.h"

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <fstream>
#include <vector>

#include "core/file.h"
#include "core/hash.h"
#include "formats/safetensors.h"

namespace sparc {
namespace {

// Headers are hashed up to this many bytes (a corrupt length cannot make a
// rank read gigabytes).
constexpr std::uint64_t kMaxHeaderBytes = 100u << 20;

// The first `n` bytes of a file, fewer when it is shorter or unreadable.
std::string first_bytes(const std::string& path, std::size_t n) {
  std::ifstream in(path, std::ios::binary);
  std::string head(n, '\0');
  in.read(head.data(), std::streamsize(n));
  head.resize(std::size_t(in.gcount()));
  return head;
}

// Adds the file's size in decimal; false when it cannot be stat'ed.
bool add_size(const std::string& path, std::uint64_t& h) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return false;
  h = fnv1a(std::to_string(st.st_size), h);
  return true;
}

}  // namespace

std::uint64_t model_fingerprint(const std::string& path) {
  if (!is_directory(path)) {
    std::uint64_t h = fnv1a("llama2c");
    if (!add_size(path, h)) return h;
    return fnv1a(first_bytes(path, 256), h);
  }
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
  for (const auto& n : names) {
    const std::string file = path + "/" + n;
    h = fnv1a(n, h);
    if (!add_size(file, h)) continue;
    // What the first 256 bytes hold decides, as it did in the first version.
    const std::string head = first_bytes(file, 256);
    if (head.size() < 8)
      h = fnv1a(head, h);
    else if (head.size() == 256)
      h = fnv1a(read_safetensors_header_text(file, kMaxHeaderBytes), h);
  }
  return h;
}

}  // namespace sparc
