// Helpers shared by the test suites.
#pragma once

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

namespace sparc::test {

// The project's shared data folder (models, tokenizers), beside the checkout.
inline std::string shared_dir() { return std::string(SPARC_SOURCE_DIR) + "/../shared"; }

inline bool path_exists(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0;
}

// Temporary directories made by a test binary, removed when it exits.
class TempDirs {
 public:
  ~TempDirs() {
    for (const auto& d : dirs_) std::filesystem::remove_all(d);
  }
  std::string make() {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base ? base : "/tmp") + "/sparc-test-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    dirs_.push_back(tmpl);
    return tmpl;
  }

 private:
  std::vector<std::string> dirs_;
};

// A fresh temporary directory for one test (removed at exit).
inline std::string make_temp_dir() {
  static TempDirs dirs;
  return dirs.make();
}

}  // namespace sparc::test

// Skips the current test, printing why, when a shared file is absent.
#define SPARC_REQUIRE_SHARED(relpath)                                                   \
  do {                                                                                 \
    if (!::sparc::test::path_exists(::sparc::test::shared_dir() + "/" + (relpath)))    \
      GTEST_SKIP() << "shared data absent: " << ::sparc::test::shared_dir() << "/"     \
                   << (relpath);                                                       \
  } while (0)
