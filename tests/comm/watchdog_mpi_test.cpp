// The watchdog end to end (run by watchdog_test.sh under mpirun -np 2):
// after two good collectives, rank 1 stops itself (SIGSTOP, or a long sleep
// with "sleep") instead of joining the third, an all_reduce tagged grad.
// Rank 0 must report "collective all_reduce (tag grad, #3, 4096 bytes) ...
// ranks not arrived: 1" and abort the job. Exit 3 means it never fired.
//
// Usage: watchdog_mpi_test TIMEOUT_S stop|sleep PID_DIR
// Each rank writes its pid to PID_DIR/rank<r>.pid so the script can kill a
// stopped leftover precisely.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include "comm/communicator.h"

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s TIMEOUT_S stop|sleep PID_DIR\n", argv[0]);
    return 2;
  }
  const double timeout = std::atof(argv[1]);
  const std::string mode = argv[2];
  auto comm = sparc::make_mpi_communicator();
  const std::string pid_file = std::string(argv[3]) + "/rank" + std::to_string(comm->rank()) + ".pid";
  if (FILE* f = std::fopen(pid_file.c_str(), "w")) {
    std::fprintf(f, "%d\n", int(::getpid()));
    std::fclose(f);
  }
  comm->set_timeout(timeout);
  torch::Tensor t = torch::ones({1024});  // 4096 bytes
  comm->all_reduce(t, sparc::ReduceOp::kSum, sparc::CommTag::kGrad);  // #1
  comm->barrier(sparc::CommTag::kControl);                             // #2
  if (comm->rank() == 1) {
    if (mode == "stop")
      ::raise(SIGSTOP);
    else
      std::this_thread::sleep_for(std::chrono::duration<double>(timeout * 10 + 30));
  }
  comm->all_reduce(t, sparc::ReduceOp::kSum, sparc::CommTag::kGrad);  // #3: rank 1 is missing
  std::fprintf(stderr, "watchdog_mpi_test: rank %d: the watchdog did not fire\n", comm->rank());
  return 3;
}
