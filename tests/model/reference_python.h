// The independent PyTorch references of tests/reference/ (Debian's
// python3-torch, SPARC_REFERENCE_PYTHON): whether they can run, and the
// directory of cases a script writes, once per script and test binary.
#pragma once

#include <cstdlib>
#include <map>
#include <stdexcept>
#include <string>

#include "test_util.h"

namespace sparc::test {

inline bool reference_python_available(std::string* why) {
  std::string cmd = std::string(SPARC_REFERENCE_PYTHON) + " -c 'import torch' >/dev/null 2>&1";
  if (std::system(cmd.c_str()) != 0) {
    *why = std::string(SPARC_REFERENCE_PYTHON) +
           " cannot import torch (install Debian's python3-torch; scripts/setup.sh does)";
    return false;
  }
  return true;
}

#define REQUIRE_REFERENCE()                                               \
  do {                                                                    \
    std::string why;                                                      \
    SPARC_REQUIRE(::sparc::test::reference_python_available(&why), why);  \
  } while (0)

// `script --out DIR` run once; DIR holds its cases.
inline const std::string& reference_cases(const std::string& script) {
  static std::map<std::string, std::string> dirs;
  auto it = dirs.find(script);
  if (it != dirs.end()) return it->second;
  std::string d = make_temp_dir();
  std::string cmd = std::string(SPARC_REFERENCE_PYTHON) + " " + script + " --out " + d;
  if (std::system(cmd.c_str()) != 0) throw std::runtime_error("reference script failed: " + script);
  return dirs.emplace(script, d).first->second;
}

}  // namespace sparc::test
