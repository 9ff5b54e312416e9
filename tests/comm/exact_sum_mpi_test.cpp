// The exact sum over ranks (comm/exact_sum.h): the same units dealt to the
// ranks in different ways give the bits one process gets alone; a NaN on one
// rank makes every rank skip. Run under mpirun with any number of ranks.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <functional>
#include <vector>

#include "comm/exact_sum.h"
#include "comm/mpi_test_main.h"

namespace sparc {
namespace {

Communicator* g_comm = nullptr;

std::vector<torch::Tensor> units(int n) {
  torch::manual_seed(11);  // the same units on every rank
  std::vector<torch::Tensor> out;
  for (int u = 0; u < n; ++u)
    out.push_back(torch::randn({257}) * torch::exp2(torch::randint(-30, 30, {257}).to(torch::kFloat32)));
  return out;
}

torch::Tensor alone(const std::vector<torch::Tensor>& us) {
  ExactSum s({200, 57}, std::int64_t(us.size()));
  for (const auto& u : us) s.add(u);
  return s.reduce(nullptr, CommTag::kGrad);
}

TEST(ExactSumRanks, EveryDealGivesTheBitsOfOneProcess) {
  const int R = g_comm->rank(), N = g_comm->size();
  const auto us = units(10);
  const auto expected = alone(us);
  // Round robin, in blocks, and all on the last rank.
  std::vector<std::function<bool(int)>> deals = {
      [&](int u) { return u % N == R; },
      [&](int u) { return u * N / 10 == R; },
      [&](int) { return R == N - 1; }};
  for (size_t d = 0; d < deals.size(); ++d) {
    ExactSum s({200, 57}, 10);
    for (int u = 0; u < 10; ++u)
      if (deals[d](u)) s.add(us[size_t(u)]);
    auto got = s.reduce(g_comm, CommTag::kGrad);
    ASSERT_TRUE(got.defined());
    EXPECT_TRUE(torch::equal(got, expected)) << "deal " << d;
  }
}

TEST(ExactSumRanks, ANanOnOneRankSkipsOnEvery) {
  const int R = g_comm->rank(), N = g_comm->size();
  ExactSum s({4}, N);
  auto x = torch::ones({4});
  if (R == N - 1) x[2] = std::nan("");
  s.add(x);
  EXPECT_FALSE(s.reduce(g_comm, CommTag::kGrad).defined());
  // Bounded: the flag crosses too.
  ExactSum b({4}, N, {2.0});
  b.add(x);
  EXPECT_FALSE(b.reduce(g_comm, CommTag::kPca).defined());
}

TEST(ExactSumRanks, UnitOrderSlotsAddTheSameOnEveryWorld) {
  const int R = g_comm->rank(), N = g_comm->size();
  const std::vector<double> values = {1e16, 1.0, -1e16, 1.0, 3.0};
  auto slots = torch::zeros({5}, torch::kFloat64);
  for (int u = 0; u < 5; ++u)
    if (u % N == R) slots[u] = values[size_t(u)];
  EXPECT_EQ(sum_in_unit_order(g_comm, slots, CommTag::kControl), 4.0);
}

}  // namespace
}  // namespace sparc

int main(int argc, char** argv) {
  return sparc::test::run_mpi_tests(argc, argv, 120, &sparc::g_comm);
}
