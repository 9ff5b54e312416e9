// `sparc report` on the command line: a page for good run directories,
// exit 2 with one line naming the file for bad ones.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "test_util.h"

namespace {

struct Result {
  int exit_code = -1;
  std::string err;
};

Result run_sparc(const std::string& args) {
  const std::string err_path = sparc::test::make_temp_dir() + "/stderr";
  const int status =
      std::system((std::string(SPARC_BINARY) + " " + args + " >/dev/null 2>" + err_path).c_str());
  Result r;
  if (WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
  std::ifstream e(err_path);
  r.err.assign(std::istreambuf_iterator<char>(e), {});
  return r;
}

size_t lines(const std::string& s) {
  size_t n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

const char* kResults = R"({"method": "prompt", "setting": "task-incremental", "tasks": ["t"],
  "accuracy_matrix": [[0.75]], "zero_shot": [0.5], "acc": 0.75, "bwt": 0.0, "fwt": 0.0,
  "forgetting": 0.0})";

TEST(ReportCli, WritesThePage) {
  const std::string dir = sparc::test::make_temp_dir();
  std::ofstream(dir + "/results.json") << kResults;
  const std::string out = dir + "/page.html";
  const Result r = run_sparc("report " + dir + " --out " + out);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::ifstream f(out);
  const std::string page((std::istreambuf_iterator<char>(f)), {});
  EXPECT_NE(page.find(">75.0</text>"), std::string::npos);
}

TEST(ReportCli, MissingRunDirectoryIsAnInputError) {
  const std::string out = sparc::test::make_temp_dir() + "/page.html";
  const Result r = run_sparc("report /nonexistent/run-x --out " + out);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("/nonexistent/run-x"), std::string::npos) << r.err;
  EXPECT_EQ(lines(r.err), 1u) << r.err;
  EXPECT_FALSE(sparc::test::path_exists(out));
}

TEST(ReportCli, BadResultsFieldIsNamed) {
  const std::string dir = sparc::test::make_temp_dir();
  std::string bad = kResults;
  bad.replace(bad.find("\"acc\": 0.75"), 11, "\"acc\": []");
  std::ofstream(dir + "/results.json") << bad;
  const Result r = run_sparc("report " + dir + " --out " + dir + "/page.html");
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find(dir + "/results.json"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("'acc'"), std::string::npos) << r.err;
  EXPECT_EQ(lines(r.err), 1u) << r.err;
}

TEST(ReportCli, NoRunDirectoryIsAUsageError) { EXPECT_EQ(run_sparc("report").exit_code, 2); }

}  // namespace
