// sparc runs with more than one thread under OpenMP's passive wait policy
// (core/threads.h): it re-executes itself with OMP_WAIT_POLICY=passive when
// none was chosen. bench gemm reports the policy its process ran with.
#include <gtest/gtest.h>

#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>

#include "cli/cli_test_util.h"

namespace sparc::test {
namespace {

// Runs a tiny bench gemm with OMP_NUM_THREADS / OMP_WAIT_POLICY set as given
// (nullptr: unset) and returns its JSON line.
nlohmann::json gemm_under(const char* omp_threads, const char* wait_policy,
                          const std::string& global_options = "") {
  auto set = [](const char* name, const char* value) {
    if (value) setenv(name, value, 1);
    else unsetenv(name);
  };
  const char* old_threads = std::getenv("OMP_NUM_THREADS");
  const char* old_policy = std::getenv("OMP_WAIT_POLICY");
  const std::string keep_threads = old_threads ? old_threads : "";
  const std::string keep_policy = old_policy ? old_policy : "";
  set("OMP_NUM_THREADS", omp_threads);
  set("OMP_WAIT_POLICY", wait_policy);
  auto r = run_sparc(global_options + " bench gemm --size 64 --iters 1 --warmup 0 --json");
  set("OMP_NUM_THREADS", old_threads ? keep_threads.c_str() : nullptr);
  set("OMP_WAIT_POLICY", old_policy ? keep_policy.c_str() : nullptr);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  const auto line = r.out.substr(0, r.out.find('\n'));
  return nlohmann::json::parse(line);
}

TEST(Threads, TwoThreadsRunUnderThePassiveWaitPolicy) {
  auto j = gemm_under("2", nullptr);
  EXPECT_EQ(j["threads"], 2);
  EXPECT_EQ(j["omp_wait_policy"], "passive");
}

TEST(Threads, OneThreadKeepsTheDefaultAndTheThreadsOptionCounts) {
  auto j = gemm_under("1", nullptr);
  EXPECT_EQ(j["threads"], 1);
  EXPECT_EQ(j["omp_wait_policy"], "default");  // one thread: nothing spins against BLAS
  j = gemm_under("1", nullptr, "--threads 2");
  EXPECT_EQ(j["threads"], 2);
  EXPECT_EQ(j["omp_wait_policy"], "passive");
  j = gemm_under("4", nullptr, "--threads=1");  // the option overrides the environment
  EXPECT_EQ(j["threads"], 1);
  EXPECT_EQ(j["omp_wait_policy"], "default");
}

TEST(Threads, AChosenPolicyIsKept) {
  auto j = gemm_under("2", "active");
  EXPECT_EQ(j["omp_wait_policy"], "active");
}

}  // namespace
}  // namespace sparc::test
