// Shared by the GoogleTest binaries that CTest runs under mpirun: one
// communicator for the whole binary, output from rank 0 only, and an exit
// code that fails on every rank when a test failed on any.
#pragma once

#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include "comm/communicator.h"
#include "test_util.h"

namespace sparc::test {

// A temporary directory every rank agrees on (rank 0 makes it, then broadcasts its name).
inline std::string shared_temp_dir(Communicator& comm) {
  auto name = torch::zeros({256}, torch::kUInt8);
  if (comm.rank() == 0) {
    std::string d = make_temp_dir();
    std::memcpy(name.data_ptr(), d.data(), d.size());
  }
  comm.broadcast(name, 0, CommTag::kControl);
  return std::string(reinterpret_cast<const char*>(name.data_ptr()));
}

// The body of main(): `*comm` is set for the tests (watchdog `timeout_s`).
inline int run_mpi_tests(int argc, char** argv, double timeout_s, Communicator** comm) {
  ::testing::InitGoogleTest(&argc, argv);
  auto owned = make_mpi_communicator();
  owned->set_timeout(timeout_s);
  *comm = owned.get();
  if (owned->rank() != 0) {  // only rank 0 reports, so the output reads as one run
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
  }
  int rc = RUN_ALL_TESTS();
  auto flag = torch::tensor({rc}, torch::kInt32);
  owned->all_reduce(flag, ReduceOp::kMax, CommTag::kControl);
  *comm = nullptr;
  return flag.item<int>();
}

}  // namespace sparc::test
