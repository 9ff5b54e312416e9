#include "core/threads.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>

namespace sparc {

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

void passive_openmp_wait_for_threaded_runs(int argc, char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") != nullptr) return;
  if (requested_threads(argc, argv) <= 1) return;
  if (setenv("OMP_WAIT_POLICY", "passive", 1) != 0) return;
  execv("/proc/self/exe", argv);
  // Still here: the exec failed; run on with libgomp's default policy.
}

}  // namespace sparc
