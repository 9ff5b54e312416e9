// The fused softmax row kernels against naive double-precision formulas.
#include "model/softmax_kernels.h"

#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

namespace sparc::kernels {
namespace {

std::uint32_t bits(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}
float from_bits(std::uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

// Naive softmax over the unmasked entries, in double; masked entries 0.
std::vector<double> naive_softmax(const std::vector<double>& x, const std::vector<std::uint8_t>& m,
                                  double scale) {
  double mx = -std::numeric_limits<double>::infinity();
  for (std::size_t j = 0; j < x.size(); ++j)
    if (!m[j]) mx = std::max(mx, scale * x[j]);
  std::vector<double> out(x.size(), 0.0);
  if (std::isinf(mx)) return out;
  double sum = 0;
  for (std::size_t j = 0; j < x.size(); ++j)
    if (!m[j]) sum += out[j] = std::exp(scale * x[j] - mx);
  for (auto& v : out) v /= sum;
  return out;
}

// Lengths around the vector widths (4, 8, 16 floats) and a real row length.
const std::int64_t kLengths[] = {1, 3, 7, 8, 15, 16, 17, 31, 33, 64, 100, 276};

TEST(SoftmaxKernels, ExpWithinTwoUlpOverItsRange) {
  std::vector<float> x;
  for (float v = -87.0f; v <= 88.0f; v += 0.0137f) x.push_back(v);
  for (float v : {0.0f, -0.0f, 1e-8f, -1e-8f, 0.5f, -0.34657359f, 0.34657359f}) x.push_back(v);
  std::vector<float> y = x;
  exp_inplace(y.data(), std::int64_t(y.size()));
  double worst = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    const double want = std::exp(double(x[i]));
    const double ulp = std::nextafter(float(want), INFINITY) - float(want);
    worst = std::max(worst, std::abs(y[i] - want) / ulp);
  }
  EXPECT_LE(worst, 2.0);
}

TEST(SoftmaxKernels, ExpEdges) {
  std::vector<float> x = {-std::numeric_limits<float>::infinity(), -90.0f, -87.5f,
                          std::numeric_limits<float>::quiet_NaN(), 0.0f};
  exp_inplace(x.data(), std::int64_t(x.size()));
  EXPECT_EQ(x[0], 0.0f);
  EXPECT_EQ(x[1], 0.0f);
  EXPECT_EQ(x[2], 0.0f);
  EXPECT_TRUE(std::isnan(x[3]));
  EXPECT_EQ(x[4], 1.0f);
}

TEST(SoftmaxKernels, Bf16RoundsToNearestEven) {
  EXPECT_EQ(float_to_bf16(1.0f), 0x3F80);
  EXPECT_EQ(float_to_bf16(from_bits(0x3F808000)), 0x3F80);  // tie, even below
  EXPECT_EQ(float_to_bf16(from_bits(0x3F818000)), 0x3F82);  // tie, even above
  EXPECT_EQ(float_to_bf16(from_bits(0x3F808001)), 0x3F81);  // just above the tie
  EXPECT_EQ(float_to_bf16(from_bits(0x3F807FFF)), 0x3F80);  // just below
  EXPECT_EQ(float_to_bf16(-2.0f), 0xC000);
  EXPECT_EQ(float_to_bf16(from_bits(0x7F7FFFFF)), 0x7F80);  // largest float rounds to inf
  EXPECT_TRUE(std::isnan(bf16_to_float(float_to_bf16(from_bits(0x7F800001)))));  // NaN stays NaN
  EXPECT_EQ(bf16_to_float(0x3FC0), 1.5f);
  EXPECT_EQ(bits(bf16_to_float(0x8000)), 0x80000000u);  // -0
}

TEST(SoftmaxKernels, MaskedSoftmaxF32MatchesNaive) {
  std::mt19937 gen(7);
  std::normal_distribution<float> normal(0.0f, 4.0f);
  for (std::int64_t n : kLengths) {
    for (float scale : {1.0f, 0.125f}) {
      std::vector<float> x(n), tmp(softmax_scratch(n));
      std::vector<std::uint8_t> m(n);
      std::vector<double> xd(n);
      for (std::int64_t j = 0; j < n; ++j) {
        xd[j] = x[j] = normal(gen);
        m[j] = j > 0 && gen() % 3 == 0;  // the first key always open
      }
      const auto want = naive_softmax(xd, m, scale);
      masked_softmax_row(x.data(), m.data(), n, scale, tmp.data());
      double total = 0;
      for (std::int64_t j = 0; j < n; ++j) {
        EXPECT_NEAR(x[j], want[j], 2e-7 + 1e-6 * want[j]) << "n " << n << " j " << j;
        if (m[j]) EXPECT_EQ(x[j], 0.0f);
        total += x[j];
      }
      EXPECT_NEAR(total, 1.0, 1e-6);
    }
  }
}

TEST(SoftmaxKernels, MaskedSoftmaxBf16MatchesNaiveWithinRounding) {
  std::mt19937 gen(11);
  std::normal_distribution<float> normal(0.0f, 4.0f);
  for (std::int64_t n : kLengths) {
    std::vector<std::uint16_t> x(n);
    std::vector<float> tmp(softmax_scratch(n));
    std::vector<std::uint8_t> m(n);
    std::vector<double> xd(n);
    for (std::int64_t j = 0; j < n; ++j) {
      x[j] = float_to_bf16(normal(gen));
      xd[j] = bf16_to_float(x[j]);  // the reference sees exactly the stored input
      m[j] = j > 0 && gen() % 4 == 0;
    }
    const auto want = naive_softmax(xd, m, 1.0);
    std::vector<float> xf(xd.begin(), xd.end());  // the same inputs through the f32 kernel
    masked_softmax_row(xf.data(), m.data(), n, 1.0f, tmp.data());
    masked_softmax_row(x.data(), m.data(), n, 1.0f, tmp.data());
    for (std::int64_t j = 0; j < n; ++j) {
      // One bf16 rounding of the result: half a unit in the 8th bit.
      EXPECT_NEAR(bf16_to_float(x[j]), want[j], 1e-7 + want[j] / 256) << "n " << n << " j " << j;
      // Exactly the f32 result rounded to nearest even (the vector store's
      // rounding against the scalar one checked bit by bit above).
      EXPECT_EQ(x[j], float_to_bf16(xf[j])) << "n " << n << " j " << j;
      if (m[j]) EXPECT_EQ(x[j], 0);
    }
  }
}

TEST(SoftmaxKernels, FullyMaskedRowIsZeroAndHugeScoresDoNotOverflow) {
  std::vector<float> x = {1.0f, 2.0f, 3.0f}, tmp(softmax_scratch(3));
  std::vector<std::uint8_t> all = {1, 1, 1};
  masked_softmax_row(x.data(), all.data(), 3, 1.0f, tmp.data());
  EXPECT_EQ(x, (std::vector<float>{0.0f, 0.0f, 0.0f}));
  // exp(1e30) would overflow; softmax subtracts the maximum first.
  x = {1e30f, 1e30f, -1e30f};
  std::vector<std::uint8_t> open = {0, 0, 0};
  masked_softmax_row(x.data(), open.data(), 3, 1.0f, tmp.data());
  EXPECT_EQ(x, (std::vector<float>{0.5f, 0.5f, 0.0f}));
  // A NaN score poisons its whole row, as the plain operators would.
  x = {1.0f, std::numeric_limits<float>::quiet_NaN(), 0.0f};
  masked_softmax_row(x.data(), open.data(), 3, 1.0f, tmp.data());
  for (float v : x) EXPECT_TRUE(std::isnan(v));
}

TEST(SoftmaxKernels, BackwardMatchesNaiveF32AndBf16) {
  std::mt19937 gen(3);
  std::uniform_real_distribution<float> uni(0.0f, 1.0f);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (std::int64_t n : kLengths) {
    std::vector<float> p(n), g(n);
    float total = 0;
    for (auto& v : p) total += v = uni(gen);
    for (auto& v : p) v /= total;
    for (auto& v : g) v = normal(gen);
    const float scale = 0.5f;
    // f32: ds_j = s p_j (g_j - sum_i p_i g_i), in double.
    double dot = 0;
    for (std::int64_t i = 0; i < n; ++i) dot += double(p[i]) * g[i];
    std::vector<double> want(n);
    for (std::int64_t j = 0; j < n; ++j) want[j] = scale * double(p[j]) * (g[j] - dot);
    std::vector<float> ds = g;
    softmax_backward_row(ds.data(), p.data(), n, scale);
    for (std::int64_t j = 0; j < n; ++j)
      EXPECT_NEAR(ds[j], want[j], 1e-6 * (std::abs(want[j]) + 0.1)) << "n " << n << " j " << j;

    // bf16 storage: the reference takes the stored (rounded) p and g.
    std::vector<std::uint16_t> pb(n), gb(n);
    for (std::int64_t j = 0; j < n; ++j) pb[j] = float_to_bf16(p[j]), gb[j] = float_to_bf16(g[j]);
    dot = 0;
    for (std::int64_t i = 0; i < n; ++i) dot += double(bf16_to_float(pb[i])) * bf16_to_float(gb[i]);
    softmax_backward_row(gb.data(), pb.data(), n, scale);
    for (std::int64_t j = 0; j < n; ++j) {
      const double w = scale * double(bf16_to_float(pb[j])) * (double(bf16_to_float(float_to_bf16(g[j]))) - dot);
      EXPECT_NEAR(bf16_to_float(gb[j]), w, 1e-7 + std::abs(w) / 128) << "n " << n << " j " << j;
    }
  }
}

// The block functions address each row's mask as documented (batch, head,
// row) and give what the row functions give, here on two threads (the block
// is above the size that runs on the calling thread alone).
TEST(SoftmaxKernels, BlocksAddressTheirMaskRowsAndMatchTheRowFunctions) {
  const int threads_before = omp_get_max_threads();
  omp_set_num_threads(2);
  const std::int64_t B = 3, H = 2, rows = 137, n = 41, count = B * H * rows;
  std::mt19937 gen(5);
  std::normal_distribution<float> normal(0.0f, 2.0f);
  // A [B, 1, rows, n + 3] mask viewed with its last 3 columns cut off.
  std::vector<std::uint8_t> mask(B * rows * (n + 3));
  for (auto& m : mask) m = gen() % 5 == 0;
  for (std::int64_t b = 0; b < B; ++b)
    for (std::int64_t r = 0; r < rows; ++r) mask[(b * rows + r) * (n + 3)] = 0;
  const MaskLayout layout{mask.data(), rows, H, rows * (n + 3), n + 3};
  std::vector<float> x(count * n), g(count * n);
  for (auto& v : x) v = normal(gen);
  for (auto& v : g) v = normal(gen);
  std::vector<std::uint16_t> xb(x.size()), gb(g.size());
  for (std::size_t i = 0; i < x.size(); ++i) xb[i] = float_to_bf16(x[i]), gb[i] = float_to_bf16(g[i]);

  std::vector<float> want = x, tmp(softmax_scratch(n));
  std::vector<std::uint16_t> want_b = xb;
  for (std::int64_t i = 0; i < count; ++i) {
    const std::int64_t b = i / (H * rows), r = i % rows;
    const std::uint8_t* m = mask.data() + (b * rows + r) * (n + 3);
    masked_softmax_row(want.data() + i * n, m, n, 0.5f, tmp.data());
    masked_softmax_row(want_b.data() + i * n, m, n, 0.5f, tmp.data());
  }
  masked_softmax_rows(x.data(), count, n, layout, 0.5f);
  masked_softmax_rows(xb.data(), count, n, layout, 0.5f);
  EXPECT_EQ(x, want);
  EXPECT_EQ(xb, want_b);
  // One mask for the whole batch: batch stride 0.
  std::vector<float> y(n, 1.0f), y_want(n, 1.0f);
  masked_softmax_row(y_want.data(), mask.data(), n, 1.0f, tmp.data());
  masked_softmax_rows(y.data(), 1, n, MaskLayout{mask.data(), 1, 1, 0, n + 3}, 1.0f);
  EXPECT_EQ(y, y_want);

  std::vector<float> dg = g, dg_want = g;
  std::vector<std::uint16_t> dgb = gb, dgb_want = gb;
  for (std::int64_t i = 0; i < count; ++i) {
    softmax_backward_row(dg_want.data() + i * n, want.data() + i * n, n, 0.5f);
    softmax_backward_row(dgb_want.data() + i * n, want_b.data() + i * n, n, 0.5f);
  }
  softmax_backward_rows(dg.data(), want.data(), count, n, 0.5f);
  softmax_backward_rows(dgb.data(), want_b.data(), count, n, 0.5f);
  EXPECT_EQ(dg, dg_want);
  EXPECT_EQ(dgb, dgb_want);
  omp_set_num_threads(threads_before);
}

// Soft-capped rows (Gemma 2): the softmax of c tanh(s x / c) and tanh kept,
// and its backward with the factor 1 - tanh^2, against double formulas.
TEST(SoftmaxKernels, CappedSoftmaxAndBackwardMatchNaive) {
  std::mt19937 gen(9);
  std::normal_distribution<float> normal(0.0f, 8.0f);  // beyond the cap: tanh saturates
  const float scale = 0.5f, cap = 3.0f;
  for (std::int64_t n : kLengths) {
    std::vector<float> x(n), th(n), tmp(softmax_scratch(n));
    std::vector<std::uint8_t> m(n);
    std::vector<double> capped(n), t(n);
    for (std::int64_t j = 0; j < n; ++j) {
      x[j] = normal(gen);
      m[j] = j > 0 && gen() % 3 == 0;
      t[j] = std::tanh(double(scale) * x[j] / cap);
      capped[j] = cap * t[j];
    }
    const auto want = naive_softmax(capped, m, 1.0);
    std::vector<float> xb = x;
    capped_softmax_row(x.data(), m.data(), n, scale, cap, th.data(), tmp.data());
    for (std::int64_t j = 0; j < n; ++j) {
      EXPECT_NEAR(x[j], want[j], 1e-6) << "n " << n << " j " << j;
      EXPECT_NEAR(th[j], m[j] ? 0.0 : t[j], 1e-6) << "n " << n << " j " << j;
    }
    // bf16 storage: probabilities within bf16 rounding.
    std::vector<std::uint16_t> b(n);
    for (std::int64_t j = 0; j < n; ++j) b[j] = float_to_bf16(xb[j]);
    std::vector<float> thb(n);
    capped_softmax_row(b.data(), m.data(), n, scale, cap, thb.data(), tmp.data());
    for (std::int64_t j = 0; j < n; ++j) {
      const double tj = m[j] ? 0.0 : std::tanh(double(scale) * bf16_to_float(float_to_bf16(xb[j])) / cap);
      EXPECT_NEAR(thb[j], tj, 1e-6);
    }
    // Backward: ds_j = s p_j (g_j - sum_i p_i g_i) (1 - t_j^2).
    std::vector<float> g(n);
    for (auto& v : g) v = normal(gen) / 8.0f;
    double dot = 0;
    for (std::int64_t i = 0; i < n; ++i) dot += double(x[i]) * g[i];
    std::vector<float> ds = g;
    capped_softmax_backward_row(ds.data(), x.data(), th.data(), n, scale);
    for (std::int64_t j = 0; j < n; ++j) {
      const double w = scale * double(x[j]) * (g[j] - dot) * (1 - double(th[j]) * th[j]);
      EXPECT_NEAR(ds[j], w, 1e-6 * (std::abs(w) + 0.1)) << "n " << n << " j " << j;
    }
  }
}

}  // namespace
}  // namespace sparc::kernels
