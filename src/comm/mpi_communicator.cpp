// The MPI backend (SPEC 3): CPU tensors over a private duplicate of
// MPI_COMM_WORLD. Every collective, blocking ones included, is a
// non-blocking MPI call (MPI_Iallreduce, ...) completed by polling
// MPI_Testall under the watchdog, so no wait can outlast timeout().
//
// Overlap: Open MPI (4.1 here) has no asynchronous progress thread, so an
// *_async collective advances only while this process calls into MPI, in
// practice when wait() polls. Small messages go out eagerly when issued;
// large ones mostly move inside wait(). `sparc bench allreduce` measures the
// overlap actually obtained.
//
// Not thread-safe: like MPI collectives themselves, calls must come from one
// thread, in the same order on every rank.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <climits>
#include <stdexcept>
#include <utility>
#include <vector>

#include "comm/comm_internal.h"

namespace sparc {
namespace {

using comm_detail::CollectiveInfo;
using comm_detail::check_mpi;

// MPI counts are ints: all_reduce and broadcast go in chunks of at most this
// many elements (bytes for broadcast); all_gather and reduce_scatter refuse more.
constexpr std::int64_t kMaxCount = INT_MAX;

// bf16 and f16 are reduced in f32: MPI has no such types, and one rounding at
// the end is more accurate than one per reduction step.
bool reduces_via_f32(torch::ScalarType t) { return t == torch::kBFloat16 || t == torch::kHalf; }

MPI_Datatype reduce_type(torch::ScalarType t) {
  switch (t) {
    case torch::kFloat: return MPI_FLOAT;
    case torch::kDouble: return MPI_DOUBLE;
    case torch::kLong: return MPI_INT64_T;
    case torch::kInt: return MPI_INT32_T;
    case torch::kByte: return MPI_UINT8_T;
    case torch::kBool: return MPI_UINT8_T;  // stored as one byte, 0 or 1: max is "any"
    default: throw std::logic_error("reduce_type: unchecked dtype");
  }
}

MPI_Op mpi_op(ReduceOp op) { return op == ReduceOp::kMax ? MPI_MAX : MPI_SUM; }

void check_cpu(const char* op, const torch::Tensor& t) {
  if (!t.defined()) throw std::invalid_argument(std::string("communicator: ") + op + ": undefined tensor");
  if (!t.device().is_cpu())
    throw std::invalid_argument(std::string("communicator: ") + op + ": tensor on " +
                                t.device().str() + "; the MPI backend takes CPU tensors");
}

// Calls issue(offset, count) over n in chunks of at most kMaxCount, at least
// once, so that ranks with empty tensors still match their peers' calls.
template <class Issue>
void chunked(std::int64_t n, Issue issue) {
  std::int64_t offset = 0;
  do {
    const std::int64_t count = std::min(n - offset, kMaxCount);
    issue(offset, static_cast<int>(count));
    offset += count;
  } while (offset < n);
}

// A started collective: its requests, and what makes the result final once
// they complete (the average's division, the copy back into a bf16 or
// non-contiguous tensor). Holding the tensors keeps MPI's buffers alive.
struct Pending {
  CollectiveInfo info;
  std::vector<MPI_Request> reqs;
  std::function<void()> finish;
};

class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator();
  ~MpiCommunicator() override;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  int local_rank() const override { return local_rank_; }
  std::string backend() const override { return "mpi"; }

  std::unique_ptr<CommWork> all_reduce_async(torch::Tensor& t, ReduceOp op, CommTag tag) override;
  std::unique_ptr<CommWork> all_gather_async(const torch::Tensor& t, torch::Tensor& out,
                                             CommTag tag) override;
  torch::Tensor reduce_scatter(const torch::Tensor& t, ReduceOp op, CommTag tag) override;
  void broadcast(torch::Tensor& t, int root, CommTag tag) override;
  void barrier(CommTag tag) override;

  // Waits for p's requests under the watchdog, then runs p.finish.
  void complete(Pending& p);
  // One MPI_Testall: progresses the requests without waiting (completed ones become null).
  void poke(Pending& p);

 private:
  Pending begin(const char* op, CommTag tag, std::int64_t bytes);

  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0, size_ = 1, local_rank_ = 0;
  std::unique_ptr<comm_detail::ArrivalBoard> board_;
};

using MpiWork = comm_detail::PendingWork<MpiCommunicator, Pending>;

MpiCommunicator::MpiCommunicator() {
  const int level = comm_detail::ensure_mpi();
  comm_ = comm_detail::dup_world();
  MPI_Comm_rank(comm_, &rank_);
  MPI_Comm_size(comm_, &size_);
  local_rank_ = comm_detail::local_rank_of(comm_);
  board_ = std::make_unique<comm_detail::ArrivalBoard>(comm_);
  spdlog::debug("communicator: mpi rank {}/{} (local {}), thread level {}", rank_, size_,
                local_rank_, level);
}

MpiCommunicator::~MpiCommunicator() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (finalized) {  // too late to free anything: MPI_Finalize has released it all
    (void)board_.release();
    return;
  }
  board_.reset();
  MPI_Comm_free(&comm_);
}

Pending MpiCommunicator::begin(const char* op, CommTag tag, std::int64_t bytes) {
  Pending p;
  p.info = {op, tag, ++sequence_, bytes};
  count(tag, bytes);
  board_->enter(sequence_);
  return p;
}

void MpiCommunicator::complete(Pending& p) {
  double waited = 0;
  const bool ok = comm_detail::poll_until(
      [&] {
        int flag = 0;
        check_mpi(MPI_Testall(int(p.reqs.size()), p.reqs.data(), &flag, MPI_STATUSES_IGNORE),
                  "MPI_Testall");
        return flag != 0;
      },
      timeout(), &waited);
  if (!ok) {
    comm_detail::report_stall(rank_, p.info, waited, board_->not_arrived(p.info.seq, 2.0));
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  if (p.finish) p.finish();
}

void MpiCommunicator::poke(Pending& p) {
  int flag = 0;
  check_mpi(MPI_Testall(int(p.reqs.size()), p.reqs.data(), &flag, MPI_STATUSES_IGNORE),
            "MPI_Testall");
}

std::unique_ptr<CommWork> MpiCommunicator::all_reduce_async(torch::Tensor& t, ReduceOp op,
                                                            CommTag tag) {
  check_cpu("all_reduce", t);
  comm_detail::check_reduce_dtype("all_reduce", t, op);
  // MPI reduces a dense buffer of its own types in place; anything else is
  // staged and written back when the work completes.
  torch::Tensor buf =
      reduces_via_f32(t.scalar_type()) ? t.to(torch::kFloat).contiguous() : t.contiguous();
  Pending p = begin("all_reduce", tag, t.numel() * t.element_size());
  const MPI_Datatype type = reduce_type(buf.scalar_type());
  char* base = static_cast<char*>(buf.data_ptr());
  const std::int64_t esize = buf.element_size();
  chunked(buf.numel(), [&](std::int64_t offset, int n) {
    MPI_Request r = MPI_REQUEST_NULL;
    check_mpi(MPI_Iallreduce(MPI_IN_PLACE, base + offset * esize, n, type, mpi_op(op), comm_, &r),
              "MPI_Iallreduce");
    p.reqs.push_back(r);
  });
  p.finish = [t, buf, op, n = size_] {
    if (op == ReduceOp::kAvg) buf.div_(n);
    if (!buf.is_same(t)) t.copy_(buf);
  };
  return std::make_unique<MpiWork>(*this, std::move(p));
}

std::unique_ptr<CommWork> MpiCommunicator::all_gather_async(const torch::Tensor& t,
                                                            torch::Tensor& out, CommTag tag) {
  check_cpu("all_gather", t);
  check_cpu("all_gather", out);
  comm_detail::check_gather_out(t, out, size_);
  torch::Tensor in = t.contiguous();
  torch::Tensor dst = out.is_contiguous() ? out : torch::empty(out.sizes(), out.options());
  const std::int64_t bytes = in.numel() * in.element_size();
  if (bytes > kMaxCount)
    throw std::invalid_argument("communicator: all_gather: " + std::to_string(bytes) +
                                " bytes per rank exceed MPI's int count; gather in parts");
  Pending p = begin("all_gather", tag, bytes);
  MPI_Request r = MPI_REQUEST_NULL;
  // Moved as bytes: no arithmetic, so any dtype works.
  check_mpi(MPI_Iallgather(in.data_ptr(), int(bytes), MPI_BYTE, dst.data_ptr(), int(bytes),
                           MPI_BYTE, comm_, &r),
            "MPI_Iallgather");
  p.reqs.push_back(r);
  p.finish = [in, dst, out] {
    if (!dst.is_same(out)) out.copy_(dst);
  };
  return std::make_unique<MpiWork>(*this, std::move(p));
}

torch::Tensor MpiCommunicator::reduce_scatter(const torch::Tensor& t, ReduceOp op, CommTag tag) {
  check_cpu("reduce_scatter", t);
  comm_detail::check_reduce_dtype("reduce_scatter", t, op);
  const auto shape = comm_detail::scattered_shape(t, size_);
  torch::Tensor in =
      reduces_via_f32(t.scalar_type()) ? t.to(torch::kFloat).contiguous() : t.contiguous();
  torch::Tensor out = torch::empty(shape, in.options());
  if (out.numel() > kMaxCount)
    throw std::invalid_argument("communicator: reduce_scatter: " + std::to_string(out.numel()) +
                                " elements per rank exceed MPI's int count");
  Pending p = begin("reduce_scatter", tag, t.numel() * t.element_size());
  MPI_Request r = MPI_REQUEST_NULL;
  check_mpi(MPI_Ireduce_scatter_block(in.data_ptr(), out.data_ptr(), int(out.numel()),
                                      reduce_type(in.scalar_type()), mpi_op(op), comm_, &r),
            "MPI_Ireduce_scatter_block");
  p.reqs.push_back(r);
  complete(p);
  if (op == ReduceOp::kAvg) out.div_(size_);
  return out.to(t.scalar_type());
}

void MpiCommunicator::broadcast(torch::Tensor& t, int root, CommTag tag) {
  check_cpu("broadcast", t);
  comm_detail::check_root(root, size_);
  torch::Tensor buf = t.contiguous();
  const std::int64_t bytes = buf.numel() * buf.element_size();
  Pending p = begin("broadcast", tag, bytes);
  char* base = static_cast<char*>(buf.data_ptr());
  chunked(bytes, [&](std::int64_t offset, int n) {
    MPI_Request r = MPI_REQUEST_NULL;
    check_mpi(MPI_Ibcast(base + offset, n, MPI_BYTE, root, comm_, &r), "MPI_Ibcast");
    p.reqs.push_back(r);
  });
  complete(p);
  if (!buf.is_same(t)) t.copy_(buf);
}

void MpiCommunicator::barrier(CommTag tag) {
  Pending p = begin("barrier", tag, 0);
  MPI_Request r = MPI_REQUEST_NULL;
  check_mpi(MPI_Ibarrier(comm_, &r), "MPI_Ibarrier");
  p.reqs.push_back(r);
  complete(p);
}

}  // namespace

std::unique_ptr<Communicator> make_mpi_communicator() {
  return std::make_unique<MpiCommunicator>();
}

}  // namespace sparc
