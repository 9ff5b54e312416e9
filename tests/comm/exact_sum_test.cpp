// Properties of the exact, order-free sum (comm/exact_sum.h) in one
// process: any order and grouping of the same units gives the same bits;
// the error against a long-double sum stays within the stated bound; the
// scale never lets a sum overflow; NaN and Inf never reach an integer.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <vector>

#include "comm/exact_sum.h"

namespace sparc {
namespace {

// Units whose magnitudes span many binades, with exact zeros and ties.
std::vector<torch::Tensor> random_units(int units, std::int64_t n, std::uint64_t seed) {
  torch::manual_seed(seed);
  std::vector<torch::Tensor> out;
  for (int u = 0; u < units; ++u) {
    auto x = torch::randn({n}) * torch::exp2(torch::randint(-20, 20, {n}).to(torch::kFloat32));
    x.index_put_({torch::indexing::Slice(0, n, 7)}, 0.0f);
    out.push_back(x);
  }
  return out;
}

torch::Tensor sum_of(const std::vector<torch::Tensor>& units, const std::vector<int>& order,
                     std::vector<std::int64_t> segments) {
  ExactSum s(std::move(segments), std::int64_t(units.size()));
  for (int i : order) s.add(units[size_t(i)]);
  return s.reduce(nullptr, CommTag::kGrad);
}

TEST(ExactSum, AnyOrderGivesTheSameBits) {
  const auto units = random_units(23, 300, 1);
  std::vector<int> order(units.size());
  std::iota(order.begin(), order.end(), 0);
  const auto first = sum_of(units, order, {100, 150, 50});
  std::mt19937 rng(7);
  for (int trial = 0; trial < 10; ++trial) {
    std::shuffle(order.begin(), order.end(), rng);
    EXPECT_TRUE(torch::equal(sum_of(units, order, {100, 150, 50}), first)) << "trial " << trial;
  }
  // A float sum in two orders differs: the test data would catch a float path.
  auto a = torch::zeros({300}), b = torch::zeros({300});
  for (size_t i = 0; i < units.size(); ++i) a += units[i], b += units[units.size() - 1 - i];
  EXPECT_FALSE(torch::equal(a, b));
}

// Grouping as ranks would: each group's integer sum computed apart, then
// the groups' integers added, against all units at once.
TEST(ExactSum, AnyGroupingGivesTheSameBits) {
  const auto units = random_units(12, 64, 2);
  double max_abs = 0;
  for (const auto& u : units) max_abs = std::max(max_abs, u.abs().max().item<double>());
  const int e = fixed_point_exponent(max_abs, 12);
  for (int groups : {1, 2, 3, 5, 12}) {
    auto total = torch::zeros({64}, torch::kLong);
    for (int g = 0; g < groups; ++g) {
      auto part = torch::zeros({64}, torch::kLong);
      for (int u = g; u < 12; u += groups) part += to_fixed_point(units[size_t(u)], e);
      total += part;
    }
    std::vector<int> order(12);
    std::iota(order.begin(), order.end(), 0);
    EXPECT_TRUE(torch::equal(from_fixed_point(total, e), sum_of(units, order, {64})))
        << groups << " groups";
  }
}

TEST(ExactSum, ErrorWithinTheStatedBound) {
  const int U = 40;
  const auto units = random_units(U, 500, 3);
  std::vector<int> order(U);
  std::iota(order.begin(), order.end(), 0);
  const auto got = sum_of(units, order, {500});
  double max_abs = 0;
  for (const auto& u : units) max_abs = std::max(max_abs, u.abs().max().item<double>());
  const int e = fixed_point_exponent(max_abs, U);
  for (std::int64_t i = 0; i < 500; ++i) {
    long double exact = 0;
    for (const auto& u : units) exact += (long double)u[i].item<float>();
    const double bound = U * std::ldexp(1.0, -(e + 1)) + std::fabs(double(exact)) * std::ldexp(1.0, -52);
    EXPECT_LE(std::fabs(double(got[i].item<double>() - exact)), bound) << "element " << i;
  }
  // The bound is useful: far below the values' own scale.
  EXPECT_LT(U * std::ldexp(1.0, -(e + 1)), max_abs * 1e-12);
}

TEST(ExactSum, ExponentIsTheLargestThatCannotOverflow) {
  for (double m : {1e-30, 3e-5, 1.0, 0.75, 1234.5, 3.4e38})
    for (std::int64_t units : {1, 3, 64, 1000000}) {
      const int e = fixed_point_exponent(m, units);
      const long double two62 = std::ldexp(1.0L, 62);
      EXPECT_LE(units * (std::ldexp((long double)m, e) + 1), two62) << m << " " << units;
      if (e < 1000) EXPECT_GT(units * (std::ldexp((long double)m, e + 1) + 1), two62) << m;
    }
  EXPECT_EQ(fixed_point_exponent(0.0, 5), 0);
  EXPECT_THROW(fixed_point_exponent(std::nan(""), 5), std::invalid_argument);
}

// Units at the f32 maximum, all of one sign: the integers reach their bound
// and do not wrap.
TEST(ExactSum, LargestValuesDoNotOverflow) {
  const float big = std::numeric_limits<float>::max();
  std::vector<torch::Tensor> units(1000, torch::full({3}, big));
  std::vector<int> order(1000);
  std::iota(order.begin(), order.end(), 0);
  auto got = sum_of(units, order, {3});
  EXPECT_NEAR(got[0].item<double>() / (1000.0 * big), 1.0, 1e-12);
  units.assign(1000, torch::full({3}, -big));
  EXPECT_NEAR(sum_of(units, order, {3})[1].item<double>() / (1000.0 * big), -1.0, 1e-12);
}

TEST(ExactSum, HalfwayValuesRoundToEven) {
  EXPECT_EQ(to_fixed_point(torch::tensor({0.5, 1.5, 2.5, -0.5, -1.5}, torch::kFloat64), 0)
                .cpu()
                .to(torch::kFloat64)
                .sub(torch::tensor({0.0, 2.0, 2.0, 0.0, -2.0}, torch::kFloat64))
                .abs()
                .max()
                .item<double>(),
            0.0);
}

TEST(ExactSum, NonFiniteUnitsGiveNoSum) {
  for (double bad : {std::nan(""), double(INFINITY), -double(INFINITY)}) {
    ExactSum s({2, 2}, 3);
    s.add(torch::tensor({1.0f, 2.0f, 3.0f, 4.0f}));
    s.add(torch::tensor({1.0f, 2.0f, float(bad), 4.0f}));
    s.add(torch::tensor({1.0f, 2.0f, 3.0f, 4.0f}));
    EXPECT_FALSE(s.reduce(nullptr, CommTag::kGrad).defined()) << bad;
    // Known bounds: the same refusal.
    ExactSum b({4}, 2, {10.0});
    b.add(torch::tensor({1.0f, float(bad), 3.0f, 4.0f}));
    EXPECT_FALSE(b.reduce(nullptr, CommTag::kGrad).defined()) << bad;
  }
  ExactSum p({1}, 1);
  p.add(torch::tensor({1.0f}));
  p.poison();
  EXPECT_FALSE(p.reduce(nullptr, CommTag::kGrad).defined());
}

TEST(ExactSum, AllZerosIsAnExactZero) {
  ExactSum s({3}, 2);
  s.add(torch::zeros({3}));
  s.add(-torch::zeros({3}));
  auto got = s.reduce(nullptr, CommTag::kGrad);
  ASSERT_TRUE(got.defined());
  EXPECT_TRUE(torch::equal(got, torch::zeros({3}, torch::kFloat64)));
}

// With bounds known up front the units are converted as they arrive: the
// same bits as a bounded sum of the same units in another order.
TEST(ExactSum, BoundedSumsAreOrderFree) {
  const auto units = random_units(9, 40, 4);
  double max_abs = 0;
  for (const auto& u : units) max_abs = std::max(max_abs, u.abs().max().item<double>());
  ExactSum fwd({40}, 9, {max_abs * 2}), back({40}, 9, {max_abs * 2});
  for (int u = 0; u < 9; ++u) fwd.add(units[size_t(u)]), back.add(units[size_t(8 - u)]);
  auto a = fwd.reduce(nullptr, CommTag::kPca), b = back.reduce(nullptr, CommTag::kPca);
  ASSERT_TRUE(a.defined());
  EXPECT_TRUE(torch::equal(a, b));
  long double exact = 0;
  for (const auto& u : units) exact += (long double)u[5].item<float>();
  EXPECT_NEAR(a[5].item<double>(), double(exact), 9 * std::ldexp(1.0, -fwd.exponents()[0]));
}

TEST(ExactSum, UnitOrderSumOfSlots) {
  auto slots = torch::tensor({1e16, 1.0, -1e16, 1.0}, torch::kFloat64);
  // In unit order: ((1e16 + 1) - 1e16) + 1 = 1 (the first 1 is absorbed).
  EXPECT_EQ(sum_in_unit_order(nullptr, slots, CommTag::kControl), 1.0);
}

TEST(ExactSum, RejectsAUnitOfTheWrongSize) {
  ExactSum s({2, 3}, 1);
  EXPECT_THROW(s.add(torch::zeros({4})), std::invalid_argument);
}

}  // namespace
}  // namespace sparc
