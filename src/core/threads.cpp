#include "core/threads.h"

#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

namespace sparc {
namespace {

std::string first_line(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

// The smallest quota, in processors, on the way from `dir` up to `root`;
// `read` gives one directory's quota (0: none).
template <class Read>
double smallest_quota(const std::string& root, std::string dir, Read read) {
  double best = 0;
  while (true) {
    const double q = read(root + dir);
    if (q > 0 && (best == 0 || q < best)) best = q;
    if (dir.empty() || dir == "/") break;
    dir = dir.substr(0, dir.find_last_of('/'));
  }
  return best;
}

double cgroup_quota() {
  std::ifstream in("/proc/self/cgroup");
  std::string line;
  double best = 0;
  auto keep = [&](double q) {
    if (q > 0 && (best == 0 || q < best)) best = q;
  };
  while (std::getline(in, line)) {
    const auto a = line.find(':'), b = line.find(':', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    const std::string controllers = line.substr(a + 1, b - a - 1), path = line.substr(b + 1);
    if (controllers.empty()) {  // v2: "max 100000" or "200000 100000"
      keep(smallest_quota("/sys/fs/cgroup", path, [](const std::string& d) {
        std::istringstream v(first_line(d + "/cpu.max"));
        std::string quota;
        double period = 0;
        if (!(v >> quota >> period) || quota == "max" || period <= 0) return 0.0;
        return std::atof(quota.c_str()) / period;
      }));
    } else if (("," + controllers + ",").find(",cpu,") != std::string::npos) {  // v1
      for (const char* mount : {"/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu,cpuacct"})
        keep(smallest_quota(mount, path, [](const std::string& d) {
          const double quota = std::atof(first_line(d + "/cpu.cfs_quota_us").c_str());
          const double period = std::atof(first_line(d + "/cpu.cfs_period_us").c_str());
          return quota > 0 && period > 0 ? quota / period : 0.0;
        }));
    }
  }
  return best;
}

int local_ranks() {
  for (const char* name : {"OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS", "SLURM_STEP_TASKS_PER_NODE"})
    if (const char* v = std::getenv(name)) {
      const int n = std::atoi(v);  // Slurm's "2(x3)": the leading count
      if (n > 0) return n;
    }
  return 1;
}

std::string processors(int n) { return std::to_string(n) + (n == 1 ? " processor" : " processors"); }

}  // namespace

int threads_for(const CoreBudget& b, std::string* why) {
  const int ranks = std::max(1, b.local_ranks);
  int n;
  std::string reason;
  if (b.affinity < b.online) {
    n = b.affinity;
    reason = processors(b.affinity) + " in this rank's CPU affinity (of " +
             std::to_string(b.online) + " online)";
  } else {
    const bool capped = b.quota > 0 && b.quota < b.online;
    // A quota of 1.5 processors buys one thread's full time: round down.
    const int cores = capped ? std::max(1, int(std::floor(b.quota))) : b.online;
    n = cores / ranks;
    std::ostringstream quota;
    quota << "a cgroup quota of " << b.quota << " processors";
    reason = capped ? quota.str() : processors(b.online) + " online";
    if (ranks > 1) reason += " shared by " + std::to_string(ranks) + " ranks on this node";
  }
  n = std::max(1, n);
  if (why) *why = reason;
  return n;
}

CoreBudget read_core_budget() {
  CoreBudget b;
  b.online = std::max(1, int(sysconf(_SC_NPROCESSORS_ONLN)));
  cpu_set_t set;
  CPU_ZERO(&set);
  b.affinity = sched_getaffinity(0, sizeof set, &set) == 0 ? std::max(1, CPU_COUNT(&set)) : b.online;
  b.quota = cgroup_quota();
  b.local_ranks = local_ranks();
  return b;
}

int requested_threads(int argc, char** argv) {
  // The last --threads wins, as in CLI11; malformed values are left for the parser to report.
  int threads = 0;
  for (int i = 1; i < argc; ++i) {
    const char* value = nullptr;
    if (std::strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
      value = argv[i + 1];
    else if (std::strncmp(argv[i], "--threads=", 10) == 0)
      value = argv[i] + 10;
    if (value != nullptr) threads = std::atoi(value);
  }
  if (threads > 0) return threads;
  if (const char* env = std::getenv("OMP_NUM_THREADS")) return std::max(0, std::atoi(env));
  return 0;
}

int resolved_threads(int argc, char** argv, std::string* why) {
  if (const int n = requested_threads(argc, argv); n > 0) {
    if (why) *why = "asked for (--threads or OMP_NUM_THREADS)";
    return n;
  }
  return threads_for(read_core_budget(), why);
}

namespace {
struct ThreadChoice {
  int threads = 1;
  bool requested = true;  // nothing recorded: leave the count alone
  void (*apply)(int) = nullptr;
  std::string why = "nothing recorded";
};
ThreadChoice& thread_choice() {
  static ThreadChoice c;
  return c;
}
}  // namespace

void record_thread_choice(int threads, bool requested, const std::string& why, void (*apply)(int)) {
  thread_choice() = {threads, requested, apply, why};
}

std::string thread_choice_text() {
  const ThreadChoice& c = thread_choice();
  return std::to_string(c.threads) + (c.threads == 1 ? " thread" : " threads") + " per rank (" +
         c.why + ")";
}

std::string settle_threads_for_model(long long d_model) {
  ThreadChoice& c = thread_choice();
  if (c.requested || c.threads <= 1 || c.apply == nullptr || d_model >= kOneThreadBelowWidth) return "";
  const int before = c.threads;
  c.threads = 1;
  c.why = "a model of width " + std::to_string(d_model) + " runs faster on one";
  c.apply(1);
  return "1 thread per rank instead of " + std::to_string(before) + ": a model of width " +
         std::to_string(d_model) + " (below " + std::to_string(kOneThreadBelowWidth) +
         ") runs faster on one; --threads N overrides";
}

void passive_openmp_wait_for_threaded_runs(int argc, char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") != nullptr) return;
  if (resolved_threads(argc, argv, nullptr) <= 1) return;
  if (setenv("OMP_WAIT_POLICY", "passive", 1) != 0) return;
  execv("/proc/self/exe", argv);
  // Still here: the exec failed; run on with libgomp's default policy.
}

}  // namespace sparc
