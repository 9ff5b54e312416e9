// sparc bench <what>: performance measurements, one function per kind. Each
// takes its options (the command line's, parsed by src/cli/bench_command.cpp),
// prints its result on rank 0 (a table or one JSON line) and returns the exit
// code; an invalid option is an InputError naming it.
//
// allreduce: times all_reduce (sum, f32) per message size on the chosen
// backend, like nccl-tests: every iteration starts after a barrier, an
// iteration's time is the slowest rank's, and the median over iterations is
// reported. algbw = bytes / time; busbw = algbw * 2(n-1)/n, the traffic of a
// ring all-reduce per link, comparable across world sizes. Then it measures
// how much of an async all_reduce overlaps with compute.
//
// step: optimizer steps of a run config's first task (PCA and initialisation
// first, untimed), with the bytes the gradient all-reduce moved per step from
// the communicator's counters, the model FLOPs per token (src/model/flops.h)
// and MFU against bench gemm's peak in the model dtype.
//
// gemm: the matrix-product peak per rank (every rank multiplies at once, as
// in training): the ceiling for MFU.
//
// pca: the covariance accumulation of PCA (GFLOP/s of its products,
// 2 N D^2 per N rows) and the top-k eigensolver's time.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace sparc::bench {

struct AllreduceOptions {
  std::vector<std::int64_t> bytes;  // empty: 1 KiB to 64 MiB in powers of 4
  int iters = 20;
  int warmup = 3;
  std::int64_t overlap_bytes = 16 << 20;  // 0: no overlap measurement
  bool json = false;
  std::string backend = "mpi";
};
int run_allreduce_bench(const AllreduceOptions& a);

struct GemmOptions {
  std::string dtype = "f32";
  std::int64_t size = 2048;
  int iters = 5;
  int warmup = 1;
  bool json = false;
  std::string backend = "mpi";
};
int run_gemm_bench(const GemmOptions& a);

struct PcaOptions {
  std::int64_t dim = 512;
  std::int64_t samples = 65536;
  std::int64_t k = 100;
  std::string dtype = "f32";
  int iters = 3;
  bool json = false;
};
int run_pca_bench(const PcaOptions& a);

struct StepOptions {
  std::string config;
  std::vector<std::string> sets;
  int steps = 20;
  double peak_gflops = 0;  // 0: measure (bench gemm, 2048^3, in the model dtype)
  bool json = false;
};
int run_step_bench(const StepOptions& a);

}  // namespace sparc::bench
