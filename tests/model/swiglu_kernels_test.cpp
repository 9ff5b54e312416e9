// The fused SwiGLU kernels against the naive double-precision formulas.
#include "model/swiglu_kernels.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "model/softmax_kernels.h"

namespace sparc::kernels {
namespace {

double silu(double g) { return g / (1 + std::exp(-g)); }
double silu_grad(double g) {
  const double s = 1 / (1 + std::exp(-g));
  return s + g * s * (1 - s);
}

template <typename T>
T stored(double v) {
  if constexpr (sizeof(T) == 2)
    return float_to_bf16(float(v));
  else
    return float(v);
}
double value(float f) { return f; }
double value(std::uint16_t b) { return bf16_to_float(b); }

// Each result within `rel` of the formula on the stored inputs (relative to
// its size, or to its terms' where they cancel), or below `floor`.
template <typename T>
void check(std::int64_t n, double rel, double floor) {
  std::mt19937 rng{std::uint32_t(n)};
  std::normal_distribution<double> dist(0.0, 3.0);
  std::vector<T> g(n), u(n), dy(n), y(n), dg(n), du(n);
  for (std::int64_t i = 0; i < n; ++i) {
    g[i] = stored<T>(dist(rng));
    u[i] = stored<T>(dist(rng));
    dy[i] = stored<T>(dist(rng));
  }
  if (n > 3) g[3] = stored<T>(-100.0), g[2] = stored<T>(100.0);  // sigmoid's saturated ends
  swiglu_forward(g.data(), u.data(), y.data(), n);
  swiglu_backward(g.data(), u.data(), dy.data(), dg.data(), du.data(), n);
  for (std::int64_t i = 0; i < n; ++i) {
    const double gv = value(g[i]), uv = value(u[i]), dv = value(dy[i]);
    const double want_y = silu(gv) * uv, want_du = dv * silu(gv), want_dg = dv * uv * silu_grad(gv);
    EXPECT_NEAR(value(y[i]), want_y, rel * std::abs(want_y) + floor) << i;
    EXPECT_NEAR(value(du[i]), want_du, rel * std::abs(want_du) + floor) << i;
    // silu' = s (1 + g (1 - s)) cancels near g = -1.28: relative to its terms' size.
    const double s = 1 / (1 + std::exp(-gv)), terms = std::abs(dv * uv) * s * (1 + std::abs(gv * (1 - s)));
    EXPECT_NEAR(value(dg[i]), want_dg, rel * terms + floor) << i;
  }
}

TEST(SwiGluKernels, Float32MatchesNaiveDouble) {
  for (std::int64_t n : {1, 7, 16, 17, 100, 70001}) check<float>(n, 1e-6, 1e-30);
}

// One rounding of the result to bfloat16 (2^-9 relative), not one per
// LibTorch operator.
TEST(SwiGluKernels, Bfloat16MatchesNaiveDouble) {
  for (std::int64_t n : {1, 7, 16, 17, 100, 70001}) check<std::uint16_t>(n, 1.0 / 256, 1e-30);
}

TEST(SwiGluKernels, NanPropagates) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::vector<float> g{1.0f, nan, 2.0f}, u{nan, 1.0f, 3.0f}, y(3);
  swiglu_forward(g.data(), u.data(), y.data(), 3);
  EXPECT_TRUE(std::isnan(y[0]));
  EXPECT_TRUE(std::isnan(y[1]));
  EXPECT_NEAR(y[2], silu(2.0) * 3.0, 1e-5);
}

}  // namespace
}  // namespace sparc::kernels
