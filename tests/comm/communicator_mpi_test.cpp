// Conformance of a Communicator backend, checked against closed forms: rank
// r contributes values built from (r + 1), so with N ranks a sum carries
// N(N+1)/2, an average (N+1)/2 and a max N. The values stay small integers
// and halves, exact in every dtype tested (bf16 included) for N <= 4.
//
// One suite for every backend: SPARC_TEST_BACKEND=mpi (default; CPU tensors)
// or nccl (CUDA tensors). Run it under mpirun with any number of ranks, or
// alone (1 rank). All ranks run the same tests in the same order; a rank
// that fails an assertion and skips a collective makes the watchdog abort
// the run instead of hanging it.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "comm/communicator.h"

namespace sparc {
namespace {

Communicator* g_comm = nullptr;
torch::Device g_device = torch::kCPU;

int N() { return g_comm->size(); }
int R() { return g_comm->rank(); }

// 1, 2, ..., 7, 1, 2, ...: small values, exact in every dtype.
torch::Tensor pattern(std::int64_t n) { return torch::arange(n, torch::kLong).remainder(7).add(1); }

// This rank's contribution: (r + 1) * pattern, as `dtype` on the backend's device.
torch::Tensor contribution(std::int64_t n, torch::ScalarType dtype) {
  return (pattern(n) * (R() + 1)).to(dtype).to(g_device);
}

// Compares on the CPU after converting the expectation (double) to got's dtype.
::testing::AssertionResult same(const torch::Tensor& got, const torch::Tensor& want) {
  torch::Tensor g = got.cpu();
  torch::Tensor w = want.to(g.scalar_type());
  if (g.sizes() != w.sizes())
    return ::testing::AssertionFailure() << "shape " << g.sizes() << ", expected " << w.sizes();
  if (!torch::equal(g, w)) {
    auto diff = (g.to(torch::kDouble) - w.to(torch::kDouble)).abs().flatten();
    const auto i = diff.argmax().item<std::int64_t>();
    return ::testing::AssertionFailure()
           << "differs at flat index " << i << ": got " << g.flatten()[i].item<double>()
           << ", expected " << w.flatten()[i].item<double>();
  }
  return ::testing::AssertionSuccess();
}

double sum_factor() { return N() * (N() + 1) / 2.0; }
double avg_factor() { return (N() + 1) / 2.0; }
double max_factor() { return N(); }

// ---- identity ------------------------------------------------------------

TEST(Communicator, RanksAndTagNames) {
  EXPECT_GE(R(), 0);
  EXPECT_LT(R(), N());
  EXPECT_TRUE(g_comm->backend() == "mpi" || g_comm->backend() == "nccl");
  // The test runs on one host: host-local ranks are the ranks.
  torch::Tensor ids = torch::tensor({std::int64_t(R()), std::int64_t(g_comm->local_rank())})
                          .to(g_device);
  torch::Tensor all = g_comm->all_gather(ids, CommTag::kControl).view({N(), 2});
  torch::Tensor ranks = torch::arange(N(), torch::kLong);
  EXPECT_TRUE(same(all.select(1, 0), ranks));
  EXPECT_TRUE(same(all.select(1, 1), ranks));
  EXPECT_STREQ(comm_tag_name(CommTag::kGrad), "grad");
  EXPECT_STREQ(comm_tag_name(CommTag::kPca), "pca");
  EXPECT_STREQ(comm_tag_name(CommTag::kGather), "gather");
  EXPECT_STREQ(comm_tag_name(CommTag::kControl), "control");
  EXPECT_STREQ(comm_tag_name(CommTag::kEval), "eval");
}

// ---- all_reduce over dtypes and sizes --------------------------------------

struct ReduceCase {
  torch::ScalarType dtype;
  std::int64_t numel;
};

std::string case_name(const ::testing::TestParamInfo<ReduceCase>& info) {
  return std::string(c10::toString(info.param.dtype)) + "_" + std::to_string(info.param.numel);
}

class AllReduce : public ::testing::TestWithParam<ReduceCase> {};

TEST_P(AllReduce, SumAvgMax) {
  const auto [dtype, n] = GetParam();
  const bool floating = c10::isFloatingType(dtype);

  torch::Tensor t = contribution(n, dtype);
  g_comm->all_reduce(t, ReduceOp::kSum, CommTag::kGrad);
  EXPECT_EQ(t.scalar_type(), dtype);
  EXPECT_TRUE(same(t, pattern(n).to(torch::kDouble) * sum_factor())) << "sum";

  t = contribution(n, dtype);
  g_comm->all_reduce(t, ReduceOp::kMax, CommTag::kGrad);
  EXPECT_TRUE(same(t, pattern(n).to(torch::kDouble) * max_factor())) << "max";

  t = contribution(n, dtype);
  if (floating) {
    g_comm->all_reduce(t, ReduceOp::kAvg, CommTag::kGrad);
    EXPECT_TRUE(same(t, pattern(n).to(torch::kDouble) * avg_factor())) << "avg";
  } else {
    EXPECT_THROW(g_comm->all_reduce(t, ReduceOp::kAvg, CommTag::kGrad), std::invalid_argument);
  }
}

std::vector<ReduceCase> reduce_cases() {
  std::vector<ReduceCase> cases;
  for (auto dtype : {torch::kFloat, torch::kDouble, torch::kBFloat16, torch::kHalf, torch::kLong,
                     torch::kInt, torch::kByte})
    for (std::int64_t n : {std::int64_t(1), std::int64_t(3), (std::int64_t(1) << 20) + 7})
      cases.push_back({dtype, n});
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Dtypes, AllReduce, ::testing::ValuesIn(reduce_cases()), case_name);

TEST(Communicator, AllReduceBoolMaxIsAny) {
  // Element i is set on rank i mod (N + 1) only: after max, set unless i mod (N + 1) == N.
  const std::int64_t n = 11;
  torch::Tensor i = torch::arange(n, torch::kLong);
  torch::Tensor t = i.remainder(N() + 1).eq(R()).to(g_device);
  g_comm->all_reduce(t, ReduceOp::kMax, CommTag::kControl);
  EXPECT_EQ(t.scalar_type(), torch::kBool);
  EXPECT_TRUE(same(t, i.remainder(N() + 1).ne(N())));
  EXPECT_THROW(g_comm->all_reduce(t, ReduceOp::kSum, CommTag::kControl), std::invalid_argument);
}

TEST(Communicator, AllReduceEmptyAndScalar) {
  torch::Tensor empty = torch::empty({0}, torch::TensorOptions(torch::kFloat).device(g_device));
  g_comm->all_reduce(empty, ReduceOp::kSum, CommTag::kGrad);
  EXPECT_EQ(empty.numel(), 0);
  torch::Tensor scalar = torch::scalar_tensor(double(R() + 1), torch::kDouble).to(g_device);
  g_comm->all_reduce(scalar, ReduceOp::kSum, CommTag::kGrad);
  EXPECT_EQ(scalar.dim(), 0);
  EXPECT_EQ(scalar.item<double>(), sum_factor());
}

TEST(Communicator, AllReduceNonContiguousWritesOnlyTheView) {
  for (auto dtype : {torch::kFloat, torch::kBFloat16, torch::kLong}) {
    // A transposed matrix: every element is in the view.
    torch::Tensor base = torch::zeros({4, 6}, torch::TensorOptions(dtype).device(g_device));
    torch::Tensor view = base.t();
    ASSERT_FALSE(view.is_contiguous());
    view.copy_(contribution(24, dtype).view({6, 4}));
    g_comm->all_reduce(view, ReduceOp::kSum, CommTag::kGrad);
    torch::Tensor want = pattern(24).view({6, 4}).to(torch::kDouble) * sum_factor();
    EXPECT_TRUE(same(view, want)) << c10::toString(dtype);
    EXPECT_TRUE(same(base, want.t())) << c10::toString(dtype);

    // Every other element: the ones in between must stay untouched.
    torch::Tensor line = torch::full({10}, -1, torch::TensorOptions(dtype).device(g_device));
    torch::Tensor even = line.slice(0, 0, 10, 2);
    even.copy_(contribution(5, dtype));
    g_comm->all_reduce(even, ReduceOp::kMax, CommTag::kGrad);
    torch::Tensor expect_line = torch::full({10}, -1.0, torch::kDouble);
    expect_line.slice(0, 0, 10, 2).copy_(pattern(5).to(torch::kDouble) * max_factor());
    EXPECT_TRUE(same(line, expect_line)) << c10::toString(dtype);
  }
}

// ---- all_gather ------------------------------------------------------------

TEST(Communicator, AllGatherConcatenatesInRankOrder) {
  for (auto dtype : {torch::kFloat, torch::kLong, torch::kBFloat16, torch::kByte}) {
    torch::Tensor mine = (torch::arange(6, torch::kLong) + 10 * R()).view({2, 3});
    torch::Tensor out = g_comm->all_gather(mine.to(dtype).to(g_device), CommTag::kGather);
    ASSERT_EQ(out.sizes(), torch::IntArrayRef({2 * N(), 3})) << c10::toString(dtype);
    EXPECT_EQ(out.scalar_type(), dtype);
    for (int q = 0; q < N(); ++q)
      EXPECT_TRUE(same(out.slice(0, 2 * q, 2 * q + 2),
                       (torch::arange(6, torch::kLong) + 10 * q).view({2, 3})))
          << c10::toString(dtype) << " rank " << q;
  }
  // A 0-dim tensor gathers to [N].
  torch::Tensor scalar = torch::scalar_tensor(R() * 3, torch::kInt).to(g_device);
  EXPECT_TRUE(same(g_comm->all_gather(scalar, CommTag::kGather),
                   torch::arange(N(), torch::kLong) * 3));
}

TEST(Communicator, AllGatherAsyncNonContiguousInAndOut) {
  // Input: a transposed view; output: a preallocated non-contiguous view.
  torch::Tensor src = (torch::arange(6, torch::kLong) + 100 * R()).view({2, 3}).to(g_device);
  torch::Tensor in = src.t();  // [3, 2]
  torch::Tensor out_base =
      torch::full({2, 3 * N()}, -1, torch::TensorOptions(torch::kLong).device(g_device));
  torch::Tensor out = out_base.t();  // [3N, 2], non-contiguous
  auto work = g_comm->all_gather_async(in, out, CommTag::kGather);
  work->wait();
  for (int q = 0; q < N(); ++q)
    EXPECT_TRUE(same(out.slice(0, 3 * q, 3 * q + 3),
                     (torch::arange(6, torch::kLong) + 100 * q).view({2, 3}).t()))
        << "rank " << q;
  torch::Tensor wrong = torch::empty({3 * N() + 1, 2}, torch::TensorOptions(torch::kLong).device(g_device));
  EXPECT_THROW(g_comm->all_gather_async(in, wrong, CommTag::kGather), std::invalid_argument);
}

TEST(Communicator, ProgressPokesLeaveAGatherWhole) {
  // A gather large enough for MPI's rendezvous protocol (8 MB per rank),
  // poked while pending (as the sharded model does between products), after
  // it may have completed, and after wait(): each rank's values arrive whole.
  const std::int64_t n = 1 << 20;
  torch::Tensor in = (torch::arange(n, torch::kDouble) + 1e7 * R()).to(g_device);
  torch::Tensor out = torch::empty({n * N()}, torch::TensorOptions(torch::kDouble).device(g_device));
  auto work = g_comm->all_gather_async(in, out, CommTag::kGather);
  for (int i = 0; i < 200; ++i) work->progress();
  work->wait();
  work->progress();
  for (int q = 0; q < N(); ++q)
    EXPECT_TRUE(same(out.slice(0, n * q, n * (q + 1)), torch::arange(n, torch::kDouble) + 1e7 * q))
        << "rank " << q;
}

// ---- reduce_scatter --------------------------------------------------------

TEST(Communicator, ReduceScatterReturnsThisRanksSlice) {
  for (auto dtype : {torch::kFloat, torch::kDouble, torch::kBFloat16, torch::kLong}) {
    torch::Tensor values = torch::arange(6 * N(), torch::kLong).add(1).view({3 * N(), 2});
    torch::Tensor t = (values * (R() + 1)).to(dtype).to(g_device);
    torch::Tensor mine = values.slice(0, 3 * R(), 3 * R() + 3).to(torch::kDouble);

    torch::Tensor sum = g_comm->reduce_scatter(t, ReduceOp::kSum, CommTag::kGrad);
    EXPECT_EQ(sum.scalar_type(), dtype);
    EXPECT_TRUE(same(sum, mine * sum_factor())) << c10::toString(dtype) << " sum";
    torch::Tensor max = g_comm->reduce_scatter(t, ReduceOp::kMax, CommTag::kGrad);
    EXPECT_TRUE(same(max, mine * max_factor())) << c10::toString(dtype) << " max";
    if (c10::isFloatingType(dtype)) {
      torch::Tensor avg = g_comm->reduce_scatter(t, ReduceOp::kAvg, CommTag::kGrad);
      EXPECT_TRUE(same(avg, mine * avg_factor())) << c10::toString(dtype) << " avg";
    }
    // The input is left as it was.
    EXPECT_TRUE(same(t, values * (R() + 1)));
  }
  if (N() > 1) {
    torch::Tensor odd = torch::zeros({N() + 1}, torch::TensorOptions(torch::kFloat).device(g_device));
    EXPECT_THROW(g_comm->reduce_scatter(odd, ReduceOp::kSum, CommTag::kGrad),
                 std::invalid_argument);
  }
}

// ---- broadcast -------------------------------------------------------------

TEST(Communicator, BroadcastFromTheLastRank) {
  const int root = N() - 1;  // non-zero whenever N > 1
  torch::Tensor want = torch::arange(7, torch::kLong) * 7 + 1;
  for (auto dtype : {torch::kFloat, torch::kBFloat16, torch::kLong, torch::kByte}) {
    torch::Tensor t = (R() == root ? want : torch::zeros({7}, torch::kLong)).to(dtype).to(g_device);
    g_comm->broadcast(t, root, CommTag::kControl);
    EXPECT_TRUE(same(t, want)) << c10::toString(dtype);
  }
  // Into a non-contiguous view: only the view changes.
  torch::Tensor base = torch::full({3, 4}, -1, torch::TensorOptions(torch::kLong).device(g_device));
  torch::Tensor col = base.select(1, 2);
  if (R() == root) col.copy_(torch::tensor({5, 6, 7}, torch::kLong).to(g_device));
  g_comm->broadcast(col, root, CommTag::kControl);
  torch::Tensor expect = torch::full({3, 4}, -1, torch::kLong);
  expect.select(1, 2).copy_(torch::tensor({5, 6, 7}, torch::kLong));
  EXPECT_TRUE(same(base, expect));

  torch::Tensor t = torch::zeros({2}, torch::TensorOptions(torch::kFloat).device(g_device));
  EXPECT_THROW(g_comm->broadcast(t, N(), CommTag::kControl), std::invalid_argument);
  EXPECT_THROW(g_comm->broadcast(t, -1, CommTag::kControl), std::invalid_argument);
}

// ---- barrier ---------------------------------------------------------------

TEST(Communicator, BarrierWaitsForTheLastArrival) {
  g_comm->barrier(CommTag::kControl);  // line up
  using clock = std::chrono::steady_clock;
  const auto start = clock::now();
  if (R() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(300));
  g_comm->barrier(CommTag::kControl);
  const double waited = std::chrono::duration<double>(clock::now() - start).count();
  // Everyone leaves after rank 0 arrives, 0.3 s in (minus clock skew between processes: none on one host).
  EXPECT_GE(waited, 0.25);
  EXPECT_LT(waited, 30.0);
}

// ---- async -----------------------------------------------------------------

TEST(Communicator, AsyncAllReduceCompletesOnWaitInAnyOrder) {
  const std::int64_t big = (std::int64_t(1) << 18) + 3;
  torch::Tensor a = contribution(big, torch::kFloat);
  torch::Tensor b = contribution(1000, torch::kBFloat16);
  torch::Tensor c_base = torch::zeros({2, 500}, torch::TensorOptions(torch::kDouble).device(g_device));
  torch::Tensor c = c_base.t();
  c.copy_(contribution(1000, torch::kDouble).view({500, 2}));

  auto wa = g_comm->all_reduce_async(a, ReduceOp::kSum, CommTag::kGrad);
  auto wb = g_comm->all_reduce_async(b, ReduceOp::kAvg, CommTag::kGrad);
  auto wc = g_comm->all_reduce_async(c, ReduceOp::kMax, CommTag::kGrad);
  wc->wait();
  wb->wait();
  wa->wait();
  wa->wait();  // a second wait is a no-op
  EXPECT_TRUE(same(a, pattern(big).to(torch::kDouble) * sum_factor()));
  EXPECT_TRUE(same(b, pattern(1000).to(torch::kDouble) * avg_factor()));
  EXPECT_TRUE(same(c, pattern(1000).view({500, 2}).to(torch::kDouble) * max_factor()));

  // A work dropped without wait() completes in its destructor.
  torch::Tensor d = contribution(77, torch::kFloat);
  { auto wd = g_comm->all_reduce_async(d, ReduceOp::kSum, CommTag::kGrad); }
  EXPECT_TRUE(same(d, pattern(77).to(torch::kDouble) * sum_factor()));
}

// ---- counters and sequence ---------------------------------------------------

TEST(Communicator, CountersCountCallsAndPayloadBytesPerTag) {
  g_comm->reset_counters();
  const std::int64_t seq0 = g_comm->sequence();
  auto opts = [](torch::ScalarType t) { return torch::TensorOptions(t).device(g_device); };

  torch::Tensor f = torch::ones({10}, opts(torch::kFloat));
  torch::Tensor h = torch::ones({6}, opts(torch::kBFloat16));
  g_comm->all_reduce(f, ReduceOp::kSum, CommTag::kGrad);                // 40 bytes
  g_comm->all_reduce_async(h, ReduceOp::kAvg, CommTag::kGrad)->wait();  // 12 bytes
  g_comm->all_gather(torch::ones({3}, opts(torch::kLong)), CommTag::kGather);  // 24 bytes
  torch::Tensor i = torch::ones({5}, opts(torch::kInt));
  g_comm->broadcast(i, 0, CommTag::kControl);  // 20 bytes
  g_comm->barrier(CommTag::kEval);             // 0 bytes
  g_comm->reduce_scatter(torch::ones({2 * N()}, opts(torch::kDouble)), ReduceOp::kSum,
                         CommTag::kEval);  // 16 N bytes
  // A rejected call is not a collective: not counted, no sequence number.
  torch::Tensor l = torch::ones({4}, opts(torch::kLong));
  EXPECT_THROW(g_comm->all_reduce(l, ReduceOp::kAvg, CommTag::kPca), std::invalid_argument);

  EXPECT_EQ(g_comm->counters(CommTag::kGrad).calls, 2);
  EXPECT_EQ(g_comm->counters(CommTag::kGrad).bytes, 52);
  EXPECT_EQ(g_comm->counters(CommTag::kGather).calls, 1);
  EXPECT_EQ(g_comm->counters(CommTag::kGather).bytes, 24);
  EXPECT_EQ(g_comm->counters(CommTag::kControl).calls, 1);
  EXPECT_EQ(g_comm->counters(CommTag::kControl).bytes, 20);
  EXPECT_EQ(g_comm->counters(CommTag::kEval).calls, 2);
  EXPECT_EQ(g_comm->counters(CommTag::kEval).bytes, 16 * N());
  EXPECT_EQ(g_comm->counters(CommTag::kPca).calls, 0);
  EXPECT_EQ(g_comm->counters(CommTag::kPca).bytes, 0);
  EXPECT_EQ(g_comm->sequence(), seq0 + 6);

  // Every rank has entered the same number of collectives.
  torch::Tensor seq = torch::tensor({g_comm->sequence()}, torch::kLong).to(g_device);
  torch::Tensor seqs = g_comm->all_gather(seq, CommTag::kControl);
  EXPECT_TRUE(same(seqs, torch::full({N()}, g_comm->sequence() - 1, torch::kLong)));

  g_comm->reset_counters();
  for (int tag = 0; tag < kCommTagCount; ++tag) {
    EXPECT_EQ(g_comm->counters(CommTag(tag)).calls, 0);
    EXPECT_EQ(g_comm->counters(CommTag(tag)).bytes, 0);
  }
}

// ---- argument errors and world size 1 ----------------------------------------

TEST(Communicator, RejectsTensorsOnTheWrongDevice) {
  // A device the backend does not take: meta for MPI, the CPU for NCCL.
  torch::Tensor wrong = g_device.is_cpu() ? torch::empty({3}, torch::kMeta) : torch::ones({3});
  const std::int64_t seq = g_comm->sequence();
  EXPECT_THROW(g_comm->all_reduce(wrong, ReduceOp::kSum, CommTag::kGrad), std::invalid_argument);
  EXPECT_THROW(g_comm->all_gather(wrong, CommTag::kGather), std::invalid_argument);
  EXPECT_THROW(g_comm->broadcast(wrong, 0, CommTag::kControl), std::invalid_argument);
  torch::Tensor complex = torch::zeros({2}, torch::TensorOptions(torch::kComplexFloat).device(g_device));
  EXPECT_THROW(g_comm->all_reduce(complex, ReduceOp::kSum, CommTag::kGrad), std::invalid_argument);
  EXPECT_EQ(g_comm->sequence(), seq);
}

TEST(Communicator, WorldOfOneIsIdentity) {
  if (N() != 1) GTEST_SKIP() << "runs in the 1-rank test (comm_mpi_1rank)";
  torch::Tensor t = contribution(5, torch::kFloat);
  for (auto op : {ReduceOp::kSum, ReduceOp::kAvg, ReduceOp::kMax}) {
    g_comm->all_reduce(t, op, CommTag::kGrad);
    EXPECT_TRUE(same(t, pattern(5)));
  }
  torch::Tensor g = g_comm->all_gather(t, CommTag::kGather);
  EXPECT_TRUE(same(g, pattern(5)));
  g.fill_(0);  // a copy, not an alias of the input
  EXPECT_TRUE(same(t, pattern(5)));
  EXPECT_TRUE(same(g_comm->reduce_scatter(t, ReduceOp::kSum, CommTag::kGrad), pattern(5)));
  g_comm->broadcast(t, 0, CommTag::kControl);
  EXPECT_TRUE(same(t, pattern(5)));
  g_comm->barrier(CommTag::kControl);
}

// On ranks other than 0 only failures are printed, prefixed with the rank.
class RankFailurePrinter : public ::testing::EmptyTestEventListener {
 public:
  explicit RankFailurePrinter(int rank) : rank_(rank) {}
  void OnTestPartResult(const ::testing::TestPartResult& r) override {
    if (r.failed())
      std::fprintf(stderr, "[rank %d] %s:%d: failure\n%s\n", rank_,
                   r.file_name() ? r.file_name() : "?", r.line_number(), r.message());
  }

 private:
  int rank_;
};

}  // namespace
}  // namespace sparc

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  const char* env = std::getenv("SPARC_TEST_BACKEND");
  const std::string backend = env && *env ? env : "mpi";
  std::unique_ptr<sparc::Communicator> comm;
  if (backend == "mpi") {
    comm = sparc::make_mpi_communicator();
  } else if (backend == "nccl") {
#ifdef SPARC_WITH_NCCL
    comm = sparc::make_nccl_communicator();
    // The backend's device rule: the local rank, or 0 when one GPU is visible.
    const int devices = int(torch::cuda::device_count());
    sparc::g_device = torch::Device(torch::kCUDA, devices == 1 ? 0 : comm->local_rank());
#else
    std::fprintf(stderr, "communicator_mpi_test: built without NCCL\n");
    return 2;
#endif
  } else {
    std::fprintf(stderr, "communicator_mpi_test: SPARC_TEST_BACKEND=%s: expected mpi or nccl\n",
                 backend.c_str());
    return 2;
  }
  sparc::g_comm = comm.get();
  comm->set_timeout(60);

  if (comm->rank() != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(new sparc::RankFailurePrinter(comm->rank()));
  }
  int failed = RUN_ALL_TESTS() != 0;
  // Every rank exits with the same status, whichever rank failed.
  torch::Tensor flag = torch::tensor({failed}, torch::kInt).to(sparc::g_device);
  comm->all_reduce(flag, sparc::ReduceOp::kMax, sparc::CommTag::kControl);
  failed = flag.cpu().item<int>();
  if (comm->rank() == 0)
    std::printf("communicator_mpi_test: backend %s, %d rank(s): %s\n", backend.c_str(),
                comm->size(), failed ? "FAILED" : "passed");
  return failed;
}
