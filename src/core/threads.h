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

namespace sparc {

// When more than one thread is asked for (--threads N or OMP_NUM_THREADS,
// read from argv/the environment) and OMP_WAIT_POLICY is unset, sets
// OMP_WAIT_POLICY=passive and re-executes /proc/self/exe with the same
// arguments. Returns (doing nothing) when one thread is used, when the user
// chose a policy, or when the exec fails. Call first thing in main, before
// any thread starts.
void passive_openmp_wait_for_threaded_runs(int argc, char** argv);

// Threads the command line or the environment asks for (0: not given).
int requested_threads(int argc, char** argv);

}  // namespace sparc
