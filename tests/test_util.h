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

// CI=true (any value but empty, 0, false, no), as in tests/skip_lib.sh.
inline bool in_ci() {
  const char* v = std::getenv("CI");
  if (v == nullptr) return false;
  const std::string s(v);
  return !(s.empty() || s == "0" || s == "false" || s == "False" || s == "FALSE" || s == "no");
}

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

// A prerequisite CI provides (../shared, /usr/bin/python3 with torch or
// numpy): when `cond` is false, skips the current test printing `why`; under
// CI (CI=true) fails it instead, so a broken set-up cannot pass. The same
// rule as tests/skip_lib.sh. A reason CI may have too (no sparse files, an
// optional tool) stays a plain GTEST_SKIP() << why.
#define SPARC_REQUIRE(cond, why)                                                      \
  do {                                                                               \
    if (!(cond)) {                                                                   \
      if (::sparc::test::in_ci())                                                    \
        GTEST_FAIL() << (why)                                                        \
                     << " (CI=true: required in CI, so a failure, not a skip)";      \
      GTEST_SKIP() << (why);                                                         \
    }                                                                                \
  } while (0)

// SPARC_REQUIRE for a file under ../shared.
#define SPARC_REQUIRE_SHARED(relpath)                                                  \
  SPARC_REQUIRE(                                                                      \
      ::sparc::test::path_exists(::sparc::test::shared_dir() + "/" + (relpath)),     \
      "shared data absent: " + ::sparc::test::shared_dir() + "/" + (relpath))
