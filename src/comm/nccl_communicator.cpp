// The NCCL backend (SPEC 3): CUDA tensors through raw device pointers on the
// communicator's own stream, so it builds against a CPU-only LibTorch. MPI
// bootstraps it (rank, size, host-local rank, the ncclUniqueId) and carries
// the watchdog's arrival board.
//
// Stream order: tensors are written by LibTorch on the legacy default stream
// (the current stream unless a caller sets another). Each collective makes
// our non-blocking stream wait for an event recorded there, then records its
// own completion event; wait() polls that event, so once it returns the host
// and any later LibTorch work see the result. Tensors handed to an async
// collective are held by its work until it completes, so the caching
// allocator cannot reuse their memory early.
#include <cuda_runtime_api.h>
#include <nccl.h>
#include <spdlog/spdlog.h>

#include <stdexcept>
#include <utility>

#include "comm/comm_internal.h"
#include "comm/device_placement.h"

namespace sparc {
namespace {

using comm_detail::CollectiveInfo;

void check_cuda(cudaError_t rc, const char* call, const char* file, int line) {
  if (rc != cudaSuccess)
    throw std::runtime_error(std::string("nccl communicator: ") + call + " failed: " +
                             cudaGetErrorString(rc) + " (" + file + ":" + std::to_string(line) +
                             ")");
}

void check_nccl(ncclResult_t rc, const char* call, const char* file, int line) {
  if (rc != ncclSuccess && rc != ncclInProgress)
    throw std::runtime_error(std::string("nccl communicator: ") + call + " failed: " +
                             ncclGetErrorString(rc) + " (" + file + ":" + std::to_string(line) +
                             ")");
}

#define SPARC_CUDA(call) check_cuda((call), #call, __FILE__, __LINE__)
#define SPARC_NCCL(call) check_nccl((call), #call, __FILE__, __LINE__)

ncclDataType_t nccl_type(torch::ScalarType t) {
  switch (t) {
    case torch::kFloat: return ncclFloat32;
    case torch::kHalf: return ncclFloat16;
    case torch::kBFloat16: return ncclBfloat16;
    case torch::kDouble: return ncclFloat64;
    case torch::kInt: return ncclInt32;
    case torch::kLong: return ncclInt64;
    case torch::kByte: return ncclUint8;
    case torch::kBool: return ncclUint8;  // one byte, 0 or 1: max is "any"
    default: throw std::logic_error("nccl_type: unchecked dtype");
  }
}

ncclRedOp_t nccl_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum: return ncclSum;
    case ReduceOp::kAvg: return ncclAvg;
    case ReduceOp::kMax: return ncclMax;
  }
  return ncclSum;
}

class NcclCommunicator;

// A collective queued on the stream: its completion event, the tensors it
// reads and writes (kept alive), and what makes the result final.
struct Pending {
  CollectiveInfo info;
  cudaEvent_t done = nullptr;
  std::function<void()> finish;
};

class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator();
  ~NcclCommunicator() override { release(); }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  int local_rank() const override { return local_rank_; }
  std::string backend() const override { return "nccl"; }

  // The blocking forms also take host tensors (counts, losses and PCA sums
  // of the training path), staged through this communicator's GPU; the
  // asynchronous forms take its GPU's tensors only.
  void all_reduce(torch::Tensor& t, ReduceOp op, CommTag tag) override;
  torch::Tensor all_gather(const torch::Tensor& t, CommTag tag) override;
  std::unique_ptr<CommWork> all_reduce_async(torch::Tensor& t, ReduceOp op, CommTag tag) override;
  std::unique_ptr<CommWork> all_gather_async(const torch::Tensor& t, torch::Tensor& out,
                                             CommTag tag) override;
  torch::Tensor reduce_scatter(const torch::Tensor& t, ReduceOp op, CommTag tag) override;
  void broadcast(torch::Tensor& t, int root, CommTag tag) override;
  void barrier(CommTag tag) override;

  // Waits for p's event under the watchdog, then runs p.finish and frees the event.
  void complete(Pending& p);
  void poke(Pending&) {}  // the stream moves the collective

 private:
  Pending begin(const char* op, CommTag tag, std::int64_t bytes);
  // Records p's completion event after the collective just queued.
  void end(Pending& p);
  std::unique_ptr<CommWork> make_work(Pending p);
  void check_device(const char* op, const torch::Tensor& t) const;
  torch::Device gpu() const { return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(device_)); }
  void release() noexcept;

  MPI_Comm mpi_comm_ = MPI_COMM_NULL;
  int rank_ = 0, size_ = 1, local_rank_ = 0, device_ = 0;
  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr;
  cudaEvent_t ready_ = nullptr;  // "LibTorch's writes so far are done", on the default stream
  int* barrier_word_ = nullptr;  // device memory for barrier()
  std::unique_ptr<comm_detail::ArrivalBoard> board_;
};

using NcclWork = comm_detail::PendingWork<NcclCommunicator, Pending>;

NcclCommunicator::NcclCommunicator() {
  comm_detail::ensure_mpi();
  mpi_comm_ = comm_detail::dup_world();
  try {
    MPI_Comm_rank(mpi_comm_, &rank_);
    MPI_Comm_size(mpi_comm_, &size_);
    local_rank_ = comm_detail::local_rank_of(mpi_comm_);
    int devices = 0;
    SPARC_CUDA(cudaGetDeviceCount(&devices));
    // The GPU device placement chose (place_rank_on_gpu), else its rule
    // without the exchange: the only visible GPU, else the local rank's.
    device_ = placed_gpu().value_or(devices == 1 ? 0 : local_rank_);
    if (device_ >= devices)
      throw std::runtime_error("nccl communicator: local rank " + std::to_string(local_rank_) +
                               " has no GPU (" + std::to_string(devices) + " visible)");
    SPARC_CUDA(cudaSetDevice(device_));
    SPARC_CUDA(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    SPARC_CUDA(cudaEventCreateWithFlags(&ready_, cudaEventDisableTiming));
    SPARC_CUDA(cudaMalloc(reinterpret_cast<void**>(&barrier_word_), sizeof(int)));
    SPARC_CUDA(cudaMemset(barrier_word_, 0, sizeof(int)));
    ncclUniqueId id{};
    if (rank_ == 0) SPARC_NCCL(ncclGetUniqueId(&id));
    comm_detail::check_mpi(MPI_Bcast(&id, sizeof id, MPI_BYTE, 0, mpi_comm_), "MPI_Bcast");
    SPARC_NCCL(ncclCommInitRank(&comm_, size_, id, rank_));
    board_ = std::make_unique<comm_detail::ArrivalBoard>(mpi_comm_);
  } catch (...) {
    release();
    throw;
  }
  spdlog::debug("communicator: nccl rank {}/{} (local {}) on cuda:{}", rank_, size_, local_rank_,
                device_);
}

void NcclCommunicator::release() noexcept {
  if (stream_) cudaStreamSynchronize(stream_);
  if (comm_) ncclCommDestroy(comm_);
  if (stream_) cudaStreamDestroy(stream_);
  if (ready_) cudaEventDestroy(ready_);
  if (barrier_word_) cudaFree(barrier_word_);
  comm_ = nullptr;
  stream_ = nullptr;
  ready_ = nullptr;
  barrier_word_ = nullptr;
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (finalized) {  // MPI_Finalize has already released the window and the comm
    (void)board_.release();
    return;
  }
  board_.reset();
  if (mpi_comm_ != MPI_COMM_NULL) MPI_Comm_free(&mpi_comm_);
}

void NcclCommunicator::check_device(const char* op, const torch::Tensor& t) const {
  if (!t.defined())
    throw std::invalid_argument(std::string("communicator: ") + op + ": undefined tensor");
  if (!t.device().is_cuda() || t.device().index() != device_)
    throw std::invalid_argument(std::string("communicator: ") + op + ": tensor on " +
                                t.device().str() + "; this NCCL communicator takes cuda:" +
                                std::to_string(device_) + " tensors");
}

Pending NcclCommunicator::begin(const char* op, CommTag tag, std::int64_t bytes) {
  // LibTorch may have moved the calling thread to another device.
  SPARC_CUDA(cudaSetDevice(device_));
  Pending p;
  p.info = {op, tag, ++sequence_, bytes};
  count(tag, bytes);
  board_->enter(sequence_);
  SPARC_CUDA(cudaEventRecord(ready_, cudaStreamLegacy));
  SPARC_CUDA(cudaStreamWaitEvent(stream_, ready_, 0));
  return p;
}

void NcclCommunicator::end(Pending& p) {
  SPARC_CUDA(cudaEventCreateWithFlags(&p.done, cudaEventDisableTiming));
  SPARC_CUDA(cudaEventRecord(p.done, stream_));
}

std::unique_ptr<CommWork> NcclCommunicator::make_work(Pending p) {
  return std::make_unique<NcclWork>(*this, std::move(p));
}

void NcclCommunicator::complete(Pending& p) {
  double waited = 0;
  const bool ok = comm_detail::poll_until(
      [&] {
        const cudaError_t rc = cudaEventQuery(p.done);
        if (rc == cudaSuccess) return true;
        if (rc != cudaErrorNotReady) check_cuda(rc, "cudaEventQuery", __FILE__, __LINE__);
        // A peer's failure surfaces here rather than as a never-completing event.
        ncclResult_t async = ncclSuccess;
        SPARC_NCCL(ncclCommGetAsyncError(comm_, &async));
        SPARC_NCCL(async);
        return false;
      },
      timeout(), &waited);
  if (!ok) {
    comm_detail::report_stall(rank_, p.info, waited, board_->not_arrived(p.info.seq, 2.0));
    ncclCommAbort(comm_);  // frees the GPU of the stuck kernel before the job dies
    comm_ = nullptr;
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  cudaEventDestroy(p.done);
  p.done = nullptr;
  if (p.finish) p.finish();
}

void NcclCommunicator::all_reduce(torch::Tensor& t, ReduceOp op, CommTag tag) {
  if (t.defined() && t.device().is_cpu()) {
    torch::Tensor staged = t.to(gpu());
    all_reduce_async(staged, op, tag)->wait();
    t.copy_(staged);
    return;
  }
  Communicator::all_reduce(t, op, tag);
}

torch::Tensor NcclCommunicator::all_gather(const torch::Tensor& t, CommTag tag) {
  if (t.defined() && t.device().is_cpu()) return Communicator::all_gather(t.to(gpu()), tag).cpu();
  return Communicator::all_gather(t, tag);
}

std::unique_ptr<CommWork> NcclCommunicator::all_reduce_async(torch::Tensor& t, ReduceOp op,
                                                             CommTag tag) {
  check_device("all_reduce", t);
  comm_detail::check_reduce_dtype("all_reduce", t, op);
  torch::Tensor buf = t.contiguous();  // queued on the default stream, before `ready_`
  Pending p = begin("all_reduce", tag, t.numel() * t.element_size());
  SPARC_NCCL(ncclAllReduce(buf.data_ptr(), buf.data_ptr(), size_t(buf.numel()),
                           nccl_type(buf.scalar_type()), nccl_op(op), comm_, stream_));
  end(p);
  p.finish = [t, buf] {
    if (!buf.is_same(t)) t.copy_(buf);
  };
  return make_work(std::move(p));
}

std::unique_ptr<CommWork> NcclCommunicator::all_gather_async(const torch::Tensor& t,
                                                             torch::Tensor& out, CommTag tag) {
  check_device("all_gather", t);
  check_device("all_gather", out);
  comm_detail::check_gather_out(t, out, size_);
  torch::Tensor in = t.contiguous();
  torch::Tensor dst = out.is_contiguous() ? out : torch::empty(out.sizes(), out.options());
  const std::int64_t bytes = in.numel() * in.element_size();
  Pending p = begin("all_gather", tag, bytes);
  // Moved as bytes: no arithmetic, so any dtype works.
  SPARC_NCCL(ncclAllGather(in.data_ptr(), dst.data_ptr(), size_t(bytes), ncclUint8, comm_,
                           stream_));
  end(p);
  p.finish = [in, dst, out] {
    if (!dst.is_same(out)) out.copy_(dst);
  };
  return make_work(std::move(p));
}

torch::Tensor NcclCommunicator::reduce_scatter(const torch::Tensor& t, ReduceOp op, CommTag tag) {
  check_device("reduce_scatter", t);
  comm_detail::check_reduce_dtype("reduce_scatter", t, op);
  const auto shape = comm_detail::scattered_shape(t, size_);
  torch::Tensor in = t.contiguous();
  torch::Tensor out = torch::empty(shape, in.options());
  Pending p = begin("reduce_scatter", tag, t.numel() * t.element_size());
  SPARC_NCCL(ncclReduceScatter(in.data_ptr(), out.data_ptr(), size_t(out.numel()),
                               nccl_type(in.scalar_type()), nccl_op(op), comm_, stream_));
  end(p);
  complete(p);
  return out;
}

void NcclCommunicator::broadcast(torch::Tensor& t, int root, CommTag tag) {
  if (t.defined() && t.device().is_cpu()) {  // staged, like the blocking all_reduce
    torch::Tensor staged = t.to(gpu());
    broadcast(staged, root, tag);
    t.copy_(staged);
    return;
  }
  check_device("broadcast", t);
  comm_detail::check_root(root, size_);
  torch::Tensor buf = t.contiguous();
  const std::int64_t bytes = buf.numel() * buf.element_size();
  Pending p = begin("broadcast", tag, bytes);
  SPARC_NCCL(ncclBroadcast(buf.data_ptr(), buf.data_ptr(), size_t(bytes), ncclUint8, root, comm_,
                           stream_));
  end(p);
  complete(p);
  if (!buf.is_same(t)) t.copy_(buf);
}

void NcclCommunicator::barrier(CommTag tag) {
  // NCCL has no barrier: a one-word all-reduce completes only when every rank joined it.
  Pending p = begin("barrier", tag, 0);
  SPARC_NCCL(ncclAllReduce(barrier_word_, barrier_word_, 1, ncclInt32, ncclSum, comm_, stream_));
  end(p);
  complete(p);
}

}  // namespace

std::unique_ptr<Communicator> make_nccl_communicator() {
  return std::make_unique<NcclCommunicator>();
}

}  // namespace sparc
