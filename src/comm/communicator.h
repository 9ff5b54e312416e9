// Collectives behind one interface (SPEC 3): an MPI backend for CPU tensors
// and an NCCL backend for CUDA buffers. Every call carries a tag and is
// counted per tag (calls, bytes), so a run can report exactly what crossed
// the network, and every blocking wait is watched: a peer that stalls or
// dies makes the others report the collective, the tag, the ranks that did
// not arrive and the wait, then abort with a non-zero exit.
#pragma once

#include <torch/torch.h>

#include <array>
#include <cstdint>
#include <memory>
#include <string>

namespace sparc {

enum class ReduceOp { kSum, kAvg, kMax };

enum class CommTag { kGrad = 0, kPca, kGather, kControl, kEval };
inline constexpr int kCommTagCount = 5;
const char* comm_tag_name(CommTag tag);

struct CommCounters {
  std::int64_t calls = 0;
  std::int64_t bytes = 0;  // payload bytes this rank contributed (tensor numel x element size)
};

// A pending asynchronous collective. wait() blocks (under the watchdog)
// until it completes; the tensor it was given is then final. Destroying an
// unwaited work waits; a work must not outlive its communicator.
class CommWork {
 public:
  virtual ~CommWork() = default;
  virtual void wait() = 0;
  // Lets the transport move the collective on without blocking: MPI moves
  // large messages only inside its calls (one MPI_Testall here); NCCL's run
  // on their own stream and need nothing.
  virtual void progress() {}
};

class Communicator {
 public:
  virtual ~Communicator() = default;

  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual int local_rank() const = 0;  // rank among the processes of this host
  virtual std::string backend() const = 0;  // "mpi" or "nccl"

  // In place over every rank. kAvg divides the sum by size().
  // The blocking forms wait on the asynchronous ones (under the watchdog).
  virtual void all_reduce(torch::Tensor& t, ReduceOp op, CommTag tag);
  virtual std::unique_ptr<CommWork> all_reduce_async(torch::Tensor& t, ReduceOp op,
                                                     CommTag tag) = 0;
  // Every rank's tensor (same shape on every rank) concatenated along dim 0.
  virtual torch::Tensor all_gather(const torch::Tensor& t, CommTag tag);
  virtual std::unique_ptr<CommWork> all_gather_async(const torch::Tensor& t, torch::Tensor& out,
                                                     CommTag tag) = 0;
  // Reduces t (dim 0 divisible by size()) and returns this rank's slice of dim 0.
  virtual torch::Tensor reduce_scatter(const torch::Tensor& t, ReduceOp op, CommTag tag) = 0;
  // In place: root's tensor to every rank (same shape and dtype everywhere).
  virtual void broadcast(torch::Tensor& t, int root, CommTag tag) = 0;
  virtual void barrier(CommTag tag) = 0;

  // Seconds a blocking wait may last before the watchdog reports and aborts
  // (0 = wait forever).
  void set_timeout(double seconds) { timeout_s_ = seconds; }
  double timeout() const { return timeout_s_; }

  const CommCounters& counters(CommTag tag) const { return counters_[int(tag)]; }
  void reset_counters() { counters_ = {}; }

  // Collectives this rank has entered so far (the "#N" of watchdog reports);
  // equal on every rank between collectives. Not reset by reset_counters().
  std::int64_t sequence() const { return sequence_; }

 protected:
  void count(CommTag tag, std::int64_t bytes) {
    counters_[int(tag)].calls += 1;
    counters_[int(tag)].bytes += bytes;
  }
  double timeout_s_ = 300.0;
  std::int64_t sequence_ = 0;

 private:
  std::array<CommCounters, kCommTagCount> counters_{};
};

// MPI over MPI_COMM_WORLD: initialises MPI (thread level MULTIPLE when
// available) unless already initialised; works with one process started
// without mpirun. CPU tensors only.
std::unique_ptr<Communicator> make_mpi_communicator();

#ifdef SPARC_WITH_NCCL
// NCCL over every rank of MPI_COMM_WORLD: rank 0's ncclUniqueId is broadcast
// with MPI; the device is the one place_rank_on_gpu() chose, else the local
// rank's (or 0 when only one GPU is visible).
// CUDA tensors (raw device pointers on the communicator's own stream); the
// blocking all_reduce, all_gather and broadcast also stage host tensors.
std::unique_ptr<Communicator> make_nccl_communicator();
#endif

}  // namespace sparc
