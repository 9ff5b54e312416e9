// Backend-independent parts of the communicators: tag names, MPI start-up,
// argument checks and the watchdog (see comm_internal.h).
#include "comm/communicator.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <thread>
#include <vector>

#include "comm/comm_internal.h"

namespace sparc {

const char* comm_tag_name(CommTag tag) {
  switch (tag) {
    case CommTag::kGrad: return "grad";
    case CommTag::kPca: return "pca";
    case CommTag::kGather: return "gather";
    case CommTag::kControl: return "control";
    case CommTag::kEval: return "eval";
  }
  return "unknown";
}

namespace comm_detail {

namespace {

// Finalises MPI at exit (static destruction) if this process initialised it.
// Communicators live in main's scope or below, so they are gone by then.
struct MpiRuntime {
  bool owned = false;
  int level = MPI_THREAD_SINGLE;
  MpiRuntime() {
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (initialized) {
      MPI_Query_thread(&level);
    } else {
      // Open MPI 4.1's MPI_Iallreduce picks a binomial tree (reduce to rank
      // 0, then broadcast) for fewer than 4 ranks or an in-place buffer, which
      // our all_reduce always is: 1.5-2.5x slower from 1 MiB up than
      // reduce-scatter + all-gather (Rabenseifner; a ring where the count is
      // below the ranks' power of two). A launcher's --mca setting wins.
      ::setenv("OMPI_MCA_coll_libnbc_iallreduce_algorithm", "3", /*overwrite=*/0);
      MPI_Init_thread(nullptr, nullptr, MPI_THREAD_MULTIPLE, &level);
      owned = true;
    }
  }
  ~MpiRuntime() {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (owned && !finalized) MPI_Finalize();
  }
};

}  // namespace

int ensure_mpi() {
  static MpiRuntime runtime;
  return runtime.level;
}

void check_mpi(int rc, const char* call) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, text, &len);
  throw std::runtime_error(std::string(call) + " failed: " + std::string(text, len));
}

MPI_Comm dup_world() {
  // A private copy of the world keeps our collectives from matching anyone
  // else's on MPI_COMM_WORLD.
  MPI_Comm comm = MPI_COMM_NULL;
  check_mpi(MPI_Comm_dup(MPI_COMM_WORLD, &comm), "MPI_Comm_dup");
  check_mpi(MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
  return comm;
}

int local_rank_of(MPI_Comm comm) {
  int rank = 0;
  check_mpi(MPI_Comm_rank(comm, &rank), "MPI_Comm_rank");
  MPI_Comm node = MPI_COMM_NULL;
  check_mpi(MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &node),
            "MPI_Comm_split_type");
  int local = 0;
  MPI_Comm_rank(node, &local);
  MPI_Comm_free(&node);
  return local;
}

bool poll_until(const std::function<bool()>& done, double timeout_s, double* waited_s) {
  using clock = std::chrono::steady_clock;
  const auto start = clock::now();
  for (;;) {
    if (done()) return true;
    const double waited = std::chrono::duration<double>(clock::now() - start).count();
    if (timeout_s > 0 && waited >= timeout_s) {
      *waited_s = waited;
      return false;
    }
    if (waited < 1.0)
      std::this_thread::yield();
    else
      std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
}

ArrivalBoard::ArrivalBoard(MPI_Comm comm) : comm_(comm) {
  MPI_Comm_rank(comm_, &rank_);
  MPI_Comm_size(comm_, &size_);
  // The comm returns errors, so a failure here (an MPI without a usable
  // one-sided component) leaves the board empty instead of aborting.
  if (MPI_Win_allocate(sizeof(std::int64_t), sizeof(std::int64_t), MPI_INFO_NULL, comm_, &mine_,
                       &win_) != MPI_SUCCESS) {
    win_ = MPI_WIN_NULL;
    return;
  }
  *mine_ = 0;
  MPI_Win_set_errhandler(win_, MPI_ERRORS_RETURN);
  if (MPI_Win_lock_all(MPI_MODE_NOCHECK, win_) != MPI_SUCCESS) {
    MPI_Win_free(&win_);
    win_ = MPI_WIN_NULL;
  }
}

ArrivalBoard::~ArrivalBoard() {
  if (win_ == MPI_WIN_NULL) return;
  MPI_Win_unlock_all(win_);
  MPI_Win_free(&win_);
}

void ArrivalBoard::enter(std::int64_t seq) {
  if (win_ == MPI_WIN_NULL) return;
  // An atomic accumulate, so a peer's concurrent read is well defined; to
  // ourselves it is a local operation of well under a microsecond.
  MPI_Accumulate(&seq, 1, MPI_INT64_T, rank_, 0, 1, MPI_INT64_T, MPI_REPLACE, win_);
  MPI_Win_flush(rank_, win_);
}

std::string ArrivalBoard::not_arrived(std::int64_t seq, double deadline_s) {
  if (win_ == MPI_WIN_NULL) return "unknown (no one-sided window)";
  std::vector<std::int64_t> seen(size_, seq);
  std::vector<MPI_Request> reqs;
  for (int r = 0; r < size_; ++r) {
    if (r == rank_) continue;
    MPI_Request req = MPI_REQUEST_NULL;
    if (MPI_Rget_accumulate(nullptr, 0, MPI_INT64_T, &seen[r], 1, MPI_INT64_T, r, 0, 1,
                            MPI_INT64_T, MPI_NO_OP, win_, &req) != MPI_SUCCESS)
      return "unknown (one-sided read failed)";
    reqs.push_back(req);
  }
  double waited = 0;
  bool failed = false;
  const bool ok = poll_until(
      [&] {
        int flag = 0;
        failed = MPI_Testall(int(reqs.size()), reqs.data(), &flag, MPI_STATUSES_IGNORE) !=
                 MPI_SUCCESS;
        return failed || flag != 0;
      },
      deadline_s, &waited);
  if (failed) return "unknown (one-sided read failed)";
  // Unfinished requests are left behind: the caller aborts the job next.
  if (!ok) return "unknown (peers unresponsive)";
  std::string list;
  for (int r = 0; r < size_; ++r)
    if (seen[r] < seq) list += (list.empty() ? "" : ", ") + std::to_string(r);
  return list.empty() ? "none" : list;
}

void report_stall(int rank, const CollectiveInfo& info, double waited_s,
                  const std::string& not_arrived) {
  std::fprintf(stderr,
               "sparc: rank %d: collective %s (tag %s, #%lld, %lld bytes) waited %.1f s; ranks "
               "not arrived: %s\n",
               rank, info.op, comm_tag_name(info.tag), static_cast<long long>(info.seq),
               static_cast<long long>(info.bytes), waited_s, not_arrived.c_str());
  std::fflush(stderr);
}

namespace {

std::string shape_text(torch::IntArrayRef s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

[[noreturn]] void bad(const char* op, const std::string& what) {
  throw std::invalid_argument(std::string("communicator: ") + op + ": " + what);
}

}  // namespace

void check_reduce_dtype(const char* op, const torch::Tensor& t, ReduceOp reduce) {
  switch (t.scalar_type()) {
    case torch::kFloat: case torch::kDouble: case torch::kBFloat16: case torch::kHalf:
      return;
    case torch::kLong: case torch::kInt: case torch::kByte:
      if (reduce == ReduceOp::kAvg) bad(op, "avg needs a floating-point tensor, not " +
                                                std::string(c10::toString(t.scalar_type())));
      return;
    case torch::kBool:
      if (reduce != ReduceOp::kMax) bad(op, "a bool tensor reduces with max only");
      return;
    default:
      bad(op, std::string("dtype ") + c10::toString(t.scalar_type()) +
                  " is not supported (f32, f64, bf16, f16, i64, i32, u8, bool)");
  }
}

std::vector<std::int64_t> gathered_shape(const torch::Tensor& t, int size) {
  std::vector<std::int64_t> shape = t.sizes().vec();
  if (shape.empty())
    shape.push_back(size);
  else
    shape[0] *= size;
  return shape;
}

void check_gather_out(const torch::Tensor& t, const torch::Tensor& out, int size) {
  const auto want = gathered_shape(t, size);
  if (out.sizes() != torch::IntArrayRef(want) || out.scalar_type() != t.scalar_type() ||
      out.device() != t.device())
    bad("all_gather", "output is " + shape_text(out.sizes()) + " " +
                          c10::toString(out.scalar_type()) + " on " + out.device().str() +
                          ", expected " + shape_text(want) + " " +
                          c10::toString(t.scalar_type()) + " on " + t.device().str());
}

std::vector<std::int64_t> scattered_shape(const torch::Tensor& t, int size) {
  if (t.dim() == 0 || t.size(0) % size != 0)
    bad("reduce_scatter", "dim 0 of " + shape_text(t.sizes()) + " is not divisible by " +
                              std::to_string(size) + " ranks");
  std::vector<std::int64_t> shape = t.sizes().vec();
  shape[0] /= size;
  return shape;
}

void check_root(int root, int size) {
  if (root < 0 || root >= size)
    bad("broadcast", "root " + std::to_string(root) + " is not a rank of " +
                         std::to_string(size));
}

}  // namespace comm_detail

void Communicator::all_reduce(torch::Tensor& t, ReduceOp op, CommTag tag) {
  all_reduce_async(t, op, tag)->wait();
}

torch::Tensor Communicator::all_gather(const torch::Tensor& t, CommTag tag) {
  torch::Tensor out = torch::empty(comm_detail::gathered_shape(t, size()), t.options());
  all_gather_async(t, out, tag)->wait();
  return out;
}

}  // namespace sparc
