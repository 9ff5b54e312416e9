// sparc runs with more than one thread under OpenMP's passive wait policy
// (core/threads.h): it re-executes itself with OMP_WAIT_POLICY=passive when
// none was chosen. bench gemm reports the policy its process ran with.
#include <gtest/gtest.h>
#include <sched.h>

#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>

#include "cli/cli_test_util.h"
#include "core/threads.h"

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

// The default thread count (no --threads, no OMP_NUM_THREADS), by hand.
TEST(Threads, TheDefaultIsWhatTheLauncherGaveTheRank) {
  std::string why;
  // Bound by the launcher to 3 of 16 processors: the mask as is, whatever the rank count.
  EXPECT_EQ(threads_for({16, 3, 0, 4}, &why), 3);
  EXPECT_NE(why.find("affinity"), std::string::npos) << why;
  // The whole node: shared by the local ranks, rounded down, at least one.
  EXPECT_EQ(threads_for({16, 16, 0, 1}, &why), 16);
  EXPECT_EQ(threads_for({16, 16, 0, 3}, &why), 5);
  EXPECT_NE(why.find("3 ranks"), std::string::npos) << why;
  EXPECT_EQ(threads_for({2, 2, 0, 4}, &why), 1);
  // A cgroup quota below the node caps it: 2.5 processors buy 2 threads' full time.
  EXPECT_EQ(threads_for({16, 16, 2.5, 1}, &why), 2);
  EXPECT_NE(why.find("quota"), std::string::npos) << why;
  EXPECT_EQ(threads_for({16, 16, 8, 2}, &why), 4);
  EXPECT_EQ(threads_for({16, 16, 0.5, 1}, &why), 1);
  EXPECT_EQ(threads_for({16, 16, 32, 2}, &why), 8);  // a quota above the node changes nothing
}

TEST(Threads, WithoutAnyRequestARankUsesItsProcessors) {
  unsetenv("OMPI_COMM_WORLD_LOCAL_SIZE");
  // Pinned to one processor (as taskset would; the child inherits the mask):
  // one thread, and no passive re-exec.
  cpu_set_t all, one;
  ASSERT_EQ(sched_getaffinity(0, sizeof all, &all), 0);
  CPU_ZERO(&one);
  for (int c = 0; c < CPU_SETSIZE; ++c)
    if (CPU_ISSET(c, &all)) {
      CPU_SET(c, &one);
      break;
    }
  ASSERT_EQ(sched_setaffinity(0, sizeof one, &one), 0);
  auto j = gemm_under(nullptr, nullptr);
  ASSERT_EQ(sched_setaffinity(0, sizeof all, &all), 0);
  EXPECT_EQ(j["threads"], 1);
  EXPECT_EQ(j["omp_wait_policy"], "default");
  const CoreBudget b = read_core_budget();
  // As many local ranks as processors: one thread each.
  setenv("OMPI_COMM_WORLD_LOCAL_SIZE", std::to_string(b.online).c_str(), 1);
  j = gemm_under(nullptr, nullptr);
  unsetenv("OMPI_COMM_WORLD_LOCAL_SIZE");
  EXPECT_EQ(j["threads"], 1);
  if (b.affinity < b.online || (b.quota > 0 && b.quota < b.online) || b.online < 2)
    GTEST_SKIP() << "this process does not own the whole node (" << b.affinity << " of "
                 << b.online << " processors, quota " << b.quota << "): the whole-node case needs it";
  // Alone on the whole node: every processor, under the passive policy.
  j = gemm_under(nullptr, nullptr);
  EXPECT_EQ(j["threads"], b.online);
  EXPECT_EQ(j["omp_wait_policy"], "passive");
}

// bench step's JSON line on a random model of width `dim` (one block), no
// thread request: what the default settles to once the model is known.
nlohmann::json step_threads(int dim) {
  const std::string dir = make_temp_dir() + "/model";
  auto made = run_sparc("--log-level warn random-model --out " + dir + " --dim " +
                        std::to_string(dim) + " --layers 1 --heads 4 --ffn " +
                        std::to_string(2 * dim) + " --vocab 300");
  EXPECT_EQ(made.exit_code, 0) << made.err;
  const char* old_threads = std::getenv("OMP_NUM_THREADS");
  const std::string keep = old_threads ? old_threads : "";
  unsetenv("OMP_NUM_THREADS");
  auto r = run_sparc("bench step --config " + std::string(SPARC_SOURCE_DIR) +
                     "/configs/tiny-task-incremental.yaml --steps 1 --json --set model.path=" + dir +
                     " --set model.tokenizer=bytes --set method=sparc --set train.batch_size=2 "
                     "--set prompt.length=4 --set pca.k=8 --set train.max_train_examples=8");
  if (old_threads) setenv("OMP_NUM_THREADS", keep.c_str(), 1);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out.substr(0, r.out.find('\n')));
  j["log"] = r.err;
  return j;
}

TEST(Threads, ANarrowModelSettlesOnOneThreadAWideOneKeepsTheProcessors) {
  const CoreBudget b = read_core_budget();
  if (b.affinity < b.online || (b.quota > 0 && b.quota < b.online) || b.online < 2)
    GTEST_SKIP() << "this process does not own the whole node (" << b.affinity << " of "
                 << b.online << " processors, quota " << b.quota << ")";
  auto narrow = step_threads(int(kOneThreadBelowWidth / 2));
  EXPECT_EQ(narrow["threads"], 1);
  EXPECT_NE(narrow["log"].get<std::string>().find("runs faster on one"), std::string::npos)
      << narrow["log"];
  auto wide = step_threads(int(kOneThreadBelowWidth));
  EXPECT_EQ(wide["threads"], b.online);
}

}  // namespace
}  // namespace sparc::test
