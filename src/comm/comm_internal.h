// Internal to the communicator backends (MPI and NCCL): MPI start-up, error
// checks, argument checks shared by both, and the watchdog (polling with a
// deadline, the arrival board, the one-line stall report).
#pragma once

#include <mpi.h>
#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <string>
#include <utility>

#include <spdlog/spdlog.h>

#include "comm/communicator.h"

namespace sparc::comm_detail {

// Initialises MPI once per process, asking for MPI_THREAD_MULTIPLE, unless
// something else already did; finalises it at exit only if it initialised it.
// Returns the thread level MPI provides.
int ensure_mpi();

// Throws std::runtime_error naming `call` with MPI's error text unless rc is MPI_SUCCESS.
void check_mpi(int rc, const char* call);

// A duplicate of MPI_COMM_WORLD whose errors are returned, not fatal, so a
// failed call becomes an exception with its text. Collective.
MPI_Comm dup_world();

// The rank of this process among the processes of its host. Collective.
int local_rank_of(MPI_Comm comm);

// What a watchdog report names.
struct CollectiveInfo {
  const char* op = "";  // "all_reduce", "barrier", ...
  CommTag tag = CommTag::kControl;
  std::int64_t seq = 0;    // the communicator's sequence number of this collective
  std::int64_t bytes = 0;  // payload this rank contributed
};

// Calls done() until it returns true or timeout_s passes (0 = never).
// Returns false on timeout, with the seconds waited in *waited_s. MPI and
// NCCL progress only while polled (Open MPI has no progress thread), so it
// polls without sleeping for the first second; after that it naps briefly
// between polls so a long wait for a slow peer does not hold a core.
bool poll_until(const std::function<bool()>& done, double timeout_s, double* waited_s);

// Each rank's sequence number, readable by the others without their help:
// an MPI window of one int64 per rank under a lock_all epoch held for the
// window's life. A rank updates its own entry on entering a collective; a
// rank whose wait timed out reads the others' with request-based one-sided
// gets, so it can name the ranks that never arrived. Passive-target reads
// complete even when the peer is stopped where the window is shared memory
// (one host) or RDMA; elsewhere they may need the peer's help, hence the
// read's own deadline. Creating and freeing the window are collective.
class ArrivalBoard {
 public:
  explicit ArrivalBoard(MPI_Comm comm);
  ~ArrivalBoard();
  ArrivalBoard(const ArrivalBoard&) = delete;
  ArrivalBoard& operator=(const ArrivalBoard&) = delete;

  void enter(std::int64_t seq);
  // The ranks whose sequence number is below seq, e.g. "1" or "0, 3";
  // "none" when all arrived; "unknown (...)" when they cannot be read
  // within deadline_s.
  std::string not_arrived(std::int64_t seq, double deadline_s);

 private:
  MPI_Comm comm_;
  int rank_ = 0, size_ = 1;
  MPI_Win win_ = MPI_WIN_NULL;
  std::int64_t* mine_ = nullptr;
};

// Prints the watchdog's one line to stderr, e.g.
// "sparc: rank 1: collective all_reduce (tag grad, #57, 4096 bytes) waited 30.0 s; ranks not arrived: 0".
void report_stall(int rank, const CollectiveInfo& info, double waited_s,
                  const std::string& not_arrived);

// ---- Argument checks shared by both backends (throw std::invalid_argument) ----

// The reductions both backends support: f32, f64, bf16, f16, i64, i32, u8
// (sum, avg for floating types only, max) and bool (max only).
void check_reduce_dtype(const char* op, const torch::Tensor& t, ReduceOp reduce);
// all_gather's output shape: dim 0 times `size` (a 0-dim tensor gathers to [size]).
std::vector<std::int64_t> gathered_shape(const torch::Tensor& t, int size);
// Checks an all_gather output buffer against gathered_shape() and t's dtype and device.
void check_gather_out(const torch::Tensor& t, const torch::Tensor& out, int size);
// reduce_scatter's output shape: dim 0 divided by `size` (must divide it).
std::vector<std::int64_t> scattered_shape(const torch::Tensor& t, int size);
void check_root(int root, int size);

// The wait handle of either backend: Comm::complete(P&) waits for the
// pending collective under the watchdog. A handle dropped without wait()
// still waits, since the backend may be writing into the buffers it holds.
template <class Comm, class P>
class PendingWork final : public CommWork {
 public:
  PendingWork(Comm& comm, P p) : comm_(comm), p_(std::move(p)) {}
  ~PendingWork() override {
    if (done_) return;
    try {
      wait();
    } catch (const std::exception& e) {
      spdlog::error("communicator: unwaited {} failed: {}", p_.info.op, e.what());
    }
  }
  void wait() override {
    if (done_) return;
    done_ = true;
    comm_.complete(p_);
  }
  void progress() override {
    if (!done_) comm_.poke(p_);
  }

 private:
  Comm& comm_;
  P p_;
  bool done_ = false;
};

}  // namespace sparc::comm_detail
