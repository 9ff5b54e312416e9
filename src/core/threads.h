// OpenMP wait policy for runs with more than one thread per process.
//
// LibTorch's elementwise kernels run on libgomp's OpenMP threads, matrix
// products on OpenBLAS's own pthreads. With libgomp's default policy its
// idle threads spin for a while after every parallel region, on the very
// cores OpenBLAS's threads need next (and the reverse): measured on 2 cores,
// bench step (configs/bench-d512.yaml, f32, 2 threads) ran at 781 tok/s
// with the default and 1,080-1,230 with OMP_WAIT_POLICY=passive. libgomp
// reads the variable once, when it is loaded, so setting it needs a fresh
// image of the process.
#pragma once

#include <string>

namespace sparc {

// What decides a rank's default thread count when neither --threads nor
// OMP_NUM_THREADS is given.
struct CoreBudget {
  int online = 1;        // processors online on this node
  int affinity = 1;      // processors in this process's CPU affinity mask
  double quota = 0;      // cgroup CPU quota in processors (0: none)
  int local_ranks = 1;   // ranks of this job on this node (from the launcher's environment)
};

// Threads for one rank: the processors the launcher gave it. An affinity
// narrower than the node means the launcher already partitioned the node
// (mpirun --bind-to, srun --cpu-bind, taskset): the rank uses its mask as is.
// Otherwise the node's processors, capped by the cgroup quota, are shared
// by the local ranks. At least 1. `why` says which applied.
int threads_for(const CoreBudget& b, std::string* why);

// Reads this process's CoreBudget: sysconf, sched_getaffinity, the cgroup
// (v2 cpu.max, v1 cpu.cfs_quota_us) of this process and its parents, and
// OMPI_COMM_WORLD_LOCAL_SIZE / MPI_LOCALNRANKS / SLURM_STEP_TASKS_PER_NODE.
CoreBudget read_core_budget();

// When more than one thread will be used (--threads N, OMP_NUM_THREADS, or
// the default of threads_for) and OMP_WAIT_POLICY is unset, sets
// OMP_WAIT_POLICY=passive and re-executes /proc/self/exe with the same
// arguments. Returns (doing nothing) when one thread is used, when the user
// chose a policy, or when the exec fails. Call first thing in main, before
// any thread starts.
void passive_openmp_wait_for_threaded_runs(int argc, char** argv);

// Threads the command line or the environment asks for (0: not given).
int requested_threads(int argc, char** argv);

// The threads this process runs with: requested_threads, else threads_for
// this process's budget; `why` says where the number came from.
int resolved_threads(int argc, char** argv, std::string* why);

// Below this model width a training step runs faster on one thread than on
// two (OpenMP's fork and join outweigh products of a few thousand FLOPs;
// measured in docs/training.md "Threads").
constexpr long long kOneThreadBelowWidth = 192;

// What main chose (threads, whether asked for, why) and how to apply another
// count (LibTorch's and OpenBLAS's pools).
void record_thread_choice(int threads, bool requested, const std::string& why, void (*apply)(int));

// "2 threads per rank (2 processors online)": what the run uses and why,
// for the commands' start-up lines.
std::string thread_choice_text();

// Once a model is loaded: a default (not asked-for) count above one drops
// to one thread for a model narrower than kOneThreadBelowWidth. Returns
// the line to log when it changed the count, else "".
std::string settle_threads_for_model(long long d_model);

}  // namespace sparc
