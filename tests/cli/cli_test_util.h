// Running the sparc binary from the CLI tests: exit code, stdout, stderr,
// and whether it ended by a signal or had to be stopped (a hang).
#pragma once

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>

#include "test_util.h"

namespace sparc::test {

struct CliResult {
  int exit_code = -1;
  bool signaled = false;   // ended by a signal (a crash, an abort)
  bool timed_out = false;  // still running after the time limit: a hang
  std::string out;         // stdout
  std::string err;         // stderr
};

// Runs `sparc ARGS` under coreutils' timeout: after `timeout_s` seconds it is
// sent SIGTERM, 5 s later SIGKILL; timeout then exits 124 (or 137).
inline CliResult run_sparc(const std::string& args, int timeout_s = 120) {
  const std::string dir = make_temp_dir();
  const std::string err_path = dir + "/stderr";
  const std::string cmd = "timeout -k 5 " + std::to_string(timeout_s) + " " +
                          std::string(SPARC_BINARY) + " " + args + " 2>" + err_path;
  CliResult r;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) throw std::runtime_error("popen failed");
  std::array<char, 4096> buf;
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
  const int status = ::pclose(p);
  if (WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
  // timeout exits 124 when it stopped the command (137 after SIGKILL) and
  // 128+N when the command itself died of signal N.
  r.timed_out = r.exit_code == 124 || r.exit_code == 137;
  r.signaled = WIFSIGNALED(status) || (r.exit_code > 128 && !r.timed_out);
  std::ifstream e(err_path);
  r.err.assign(std::istreambuf_iterator<char>(e), {});
  return r;
}

inline void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

inline std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

inline std::string shared(const std::string& rel) { return shared_dir() + "/" + rel; }

// A user error: exit 2, not a signal, not a hang, no LibTorch stack dump,
// and `needle` on stderr; `one_line`: the whole message is one line.
inline void expect_input_error(const CliResult& r, const std::string& needle,
                               bool one_line = true) {
  EXPECT_FALSE(r.signaled) << r.err;
  EXPECT_FALSE(r.timed_out) << r.err;
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << "expected '" << needle << "' in: " << r.err;
  EXPECT_EQ(r.err.find("frame #"), std::string::npos) << "stack dump in: " << r.err;
  if (one_line) {
    size_t lines = 0;
    for (char c : r.err) lines += c == '\n';
    EXPECT_EQ(lines, 1u) << r.err;
  }
}

}  // namespace sparc::test
