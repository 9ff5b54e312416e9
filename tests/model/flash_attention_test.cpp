// The flash attention kernels against a naive double-precision formula:
// forward and backward, float32 and bfloat16, on every instruction set this
// CPU runs (the portable paths too), odd lengths, masks, soft-capping,
// grouped-query heads; and the same bits on 1 and 2 threads.
#include "model/flash_attention.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "model/softmax_kernels.h"

namespace sparc::kernels {
namespace {

struct Case {
  AttentionShape shape;
  std::vector<std::uint8_t> mask;  // [B or 1][Sq][Sk]; empty: nothing blocked
  bool mask_per_batch = true;
  float scale = 1.0f, softcap = 0.0f;
};

// Inputs as doubles holding values exactly representable in the storage type.
struct Inputs {
  std::vector<double> q, k, v, dout;
};

struct Grads {
  std::vector<double> out, dq, dk, dv;
};

bool blocked(const Case& c, std::int64_t b, std::int64_t i, std::int64_t j) {
  if (c.mask.empty()) return false;
  const auto& s = c.shape;
  return c.mask[((c.mask_per_batch ? b : 0) * s.q_len + i) * s.k_len + j] != 0;
}

// softmax over unmasked keys of s = cap tanh(scale q.k / cap) (or scale q.k),
// its value product, and the textbook backward, all in double.
Grads naive(const Case& c, const Inputs& x) {
  const auto& s = c.shape;
  const std::int64_t B = s.batch, H = s.heads, KV = s.kv_heads, Sq = s.q_len, Sk = s.k_len;
  const std::int64_t hd = s.head_dim, G = H / KV;
  Grads g;
  g.out.assign(B * H * Sq * hd, 0.0);
  g.dq.assign(B * H * Sq * hd, 0.0);
  g.dk.assign(B * KV * Sk * hd, 0.0);
  g.dv.assign(B * KV * Sk * hd, 0.0);
  for (std::int64_t b = 0; b < B; ++b)
    for (std::int64_t h = 0; h < H; ++h) {
      const std::int64_t kv = b * KV + h / G, bh = b * H + h;
      for (std::int64_t i = 0; i < Sq; ++i) {
        const double* q = &x.q[(bh * Sq + i) * hd];
        const double* go = &x.dout[(bh * Sq + i) * hd];
        std::vector<double> sc(Sk), th(Sk, 0.0), p(Sk, 0.0), dp(Sk, 0.0);
        double mx = -std::numeric_limits<double>::infinity();
        for (std::int64_t j = 0; j < Sk; ++j) {
          double dot = 0;
          for (std::int64_t d = 0; d < hd; ++d) dot += q[d] * x.k[(kv * Sk + j) * hd + d];
          sc[j] = c.scale * dot;
          if (c.softcap > 0) {
            th[j] = std::tanh(sc[j] / c.softcap);
            sc[j] = c.softcap * th[j];
          }
          if (!blocked(c, b, i, j)) mx = std::max(mx, sc[j]);
        }
        if (std::isinf(mx)) continue;  // every key blocked: output and gradients 0
        double sum = 0;
        for (std::int64_t j = 0; j < Sk; ++j)
          if (!blocked(c, b, i, j)) sum += p[j] = std::exp(sc[j] - mx);
        double pdp = 0;
        for (std::int64_t j = 0; j < Sk; ++j) {
          p[j] /= sum;
          for (std::int64_t d = 0; d < hd; ++d) {
            g.out[(bh * Sq + i) * hd + d] += p[j] * x.v[(kv * Sk + j) * hd + d];
            dp[j] += go[d] * x.v[(kv * Sk + j) * hd + d];
            g.dv[(kv * Sk + j) * hd + d] += p[j] * go[d];
          }
          pdp += p[j] * dp[j];
        }
        for (std::int64_t j = 0; j < Sk; ++j) {
          const double ds = p[j] * (dp[j] - pdp) * c.scale * (1 - th[j] * th[j]);
          for (std::int64_t d = 0; d < hd; ++d) {
            g.dq[(bh * Sq + i) * hd + d] += ds * x.k[(kv * Sk + j) * hd + d];
            g.dk[(kv * Sk + j) * hd + d] += ds * q[d];
          }
        }
      }
    }
  return g;
}

std::vector<double> randn(std::size_t n, std::mt19937& rng, bool bf16) {
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<double> v(n);
  for (auto& e : v) {
    const float f = dist(rng);
    e = bf16 ? bf16_to_float(float_to_bf16(f)) : f;
  }
  return v;
}

Inputs make_inputs(const AttentionShape& s, bool bf16, unsigned seed) {
  std::mt19937 rng(seed);
  Inputs x;
  x.q = randn(s.batch * s.heads * s.q_len * s.head_dim, rng, bf16);
  x.k = randn(s.batch * s.kv_heads * s.k_len * s.head_dim, rng, bf16);
  x.v = randn(s.batch * s.kv_heads * s.k_len * s.head_dim, rng, bf16);
  x.dout = randn(s.batch * s.heads * s.q_len * s.head_dim, rng, bf16);
  return x;
}

template <typename T>
std::vector<T> stored(const std::vector<double>& v) {
  std::vector<T> out(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) {
    if constexpr (sizeof(T) == 2)
      out[i] = float_to_bf16(float(v[i]));
    else
      out[i] = float(v[i]);
  }
  return out;
}
double value(float f) { return f; }
double value(std::uint16_t b) { return bf16_to_float(b); }

AttentionMask mask_of(const Case& c) {
  AttentionMask m;
  if (c.mask.empty()) return m;
  m.base = c.mask.data();
  m.row_stride = c.shape.k_len;
  m.batch_stride = c.mask_per_batch ? c.shape.q_len * c.shape.k_len : 0;
  return m;
}

// The kernel's outputs and gradients as doubles.
template <typename T>
Grads run(const Case& c, const Inputs& x, FlashIsa isa, int threads, std::vector<float>* lse_out = nullptr) {
  const auto& s = c.shape;
  auto q = stored<T>(x.q), k = stored<T>(x.k), v = stored<T>(x.v), dout = stored<T>(x.dout);
  std::vector<T> out(q.size()), dq(q.size()), dk(k.size()), dv(v.size());
  std::vector<float> lse(s.batch * s.heads * s.q_len);
  FlashOptions o;
  o.scale = c.scale;
  o.softcap = c.softcap;
  o.threads = threads;
  o.isa = isa;
  const auto mask = mask_of(c);
  flash_attention_forward(q.data(), k.data(), v.data(), s, mask, o, out.data(), lse.data());
  flash_attention_backward(q.data(), k.data(), v.data(), out.data(), dout.data(), lse.data(), s,
                           mask, o, dq.data(), dk.data(), dv.data());
  if (lse_out) *lse_out = lse;
  auto widen_all = [](const std::vector<T>& t) {
    std::vector<double> r(t.size());
    for (std::size_t i = 0; i < t.size(); ++i) r[i] = value(t[i]);
    return r;
  };
  return Grads{widen_all(out), widen_all(dq), widen_all(dk), widen_all(dv)};
}

// Largest |got - want| relative to the largest |want|.
double rel_error(const std::vector<double>& got, const std::vector<double>& want) {
  double err = 0, scale = 0;
  for (std::size_t i = 0; i < want.size(); ++i) {
    err = std::max(err, std::isnan(got[i]) ? INFINITY : std::abs(got[i] - want[i]));
    scale = std::max(scale, std::abs(want[i]));
  }
  return err / std::max(scale, 1e-30);
}

// A causal mask over S positions, with `window` > 0 a sliding window too.
std::vector<std::uint8_t> causal_mask(std::int64_t batch, std::int64_t S, std::int64_t window = 0) {
  std::vector<std::uint8_t> m(batch * S * S);
  for (std::int64_t b = 0; b < batch; ++b)
    for (std::int64_t i = 0; i < S; ++i)
      for (std::int64_t j = 0; j < S; ++j)
        m[(b * S + i) * S + j] = j > i || (window > 0 && i - j >= window);
  return m;
}

std::vector<Case> cases() {
  std::vector<Case> all;
  {  // causal, odd lengths and head size, grouped-query heads
    Case c;
    c.shape = {2, 4, 2, 70, 70, 40};
    c.mask = causal_mask(2, 70);
    c.scale = 1.0f / std::sqrt(40.0f);
    all.push_back(c);
  }
  {  // random per-sequence mask, queries != keys, fully masked rows (rows 3 and 36 of sequence 1)
    Case c;
    c.shape = {2, 2, 1, 37, 75, 16};
    std::mt19937 rng(7);
    c.mask.resize(2 * 37 * 75);
    for (auto& e : c.mask) e = rng() % 3 == 0;
    for (std::int64_t j = 0; j < 75; ++j) c.mask[(37 + 3) * 75 + j] = c.mask[(37 + 36) * 75 + j] = 1;
    c.scale = 0.25f;
    all.push_back(c);
  }
  {  // soft-capped, sliding window, one mask for the batch, several key blocks
    Case c;
    c.shape = {1, 2, 2, 150, 150, 64};
    c.mask = causal_mask(1, 150, 50);
    c.mask_per_batch = false;
    c.softcap = 3.0f;
    all.push_back(c);
  }
  {  // no mask at all, a single query row
    Case c;
    c.shape = {3, 3, 3, 1, 33, 8};
    c.scale = 0.5f;
    all.push_back(c);
  }
  return all;
}

std::vector<FlashIsa> isas() {
  std::vector<FlashIsa> r{FlashIsa::kBaseline};
  for (FlashIsa i : {FlashIsa::kAvx2, FlashIsa::kAvx512, FlashIsa::kAvx512Bf16})
    if (int(i) <= int(flash_best_isa())) r.push_back(i);
  return r;
}

template <typename T>
void check_against_naive(double tol) {
  const bool bf16 = sizeof(T) == 2;
  int n = 0;
  for (const Case& c : cases()) {
    const Inputs x = make_inputs(c.shape, bf16, 100 + n++);
    const Grads want = naive(c, x);
    for (FlashIsa isa : isas()) {
      SCOPED_TRACE("case " + std::to_string(n - 1) + ", instruction set " + std::to_string(int(isa)));
      std::vector<float> lse;
      const Grads got = run<T>(c, x, isa, 1, &lse);
      EXPECT_LE(rel_error(got.out, want.out), tol);
      EXPECT_LE(rel_error(got.dq, want.dq), tol);
      EXPECT_LE(rel_error(got.dk, want.dk), tol);
      EXPECT_LE(rel_error(got.dv, want.dv), tol);
      // Rows with every key blocked: exactly 0 out and dq, lse +inf.
      const auto& s = c.shape;
      for (std::int64_t b = 0; b < s.batch; ++b)
        for (std::int64_t i = 0; i < s.q_len; ++i) {
          bool none = true;
          for (std::int64_t j = 0; j < s.k_len; ++j) none = none && blocked(c, b, i, j);
          if (!none) continue;
          for (std::int64_t h = 0; h < s.heads; ++h) {
            const std::int64_t row = (b * s.heads + h) * s.q_len + i;
            EXPECT_TRUE(std::isinf(lse[row]) && lse[row] > 0);
            for (std::int64_t d = 0; d < s.head_dim; ++d) {
              EXPECT_EQ(got.out[row * s.head_dim + d], 0.0);
              EXPECT_EQ(got.dq[row * s.head_dim + d], 0.0);
            }
          }
        }
    }
  }
}

// float32: about n u for the ~200-term sums (u = 2^-24), relative to the largest value.
TEST(FlashAttention, Float32MatchesNaiveDouble) { check_against_naive<float>(1e-5); }

// bfloat16 storage rounds the inputs (held exactly by the reference), the
// probabilities and score gradients before their products, and the results.
TEST(FlashAttention, Bfloat16MatchesNaiveDouble) { check_against_naive<std::uint16_t>(1.5e-2); }

template <typename T>
void check_same_bits_on_two_threads() {
  Case c;
  c.shape = {2, 4, 2, 130, 130, 64};  // over the kernel's one-thread threshold
  c.mask = causal_mask(2, 130, 90);
  c.scale = 0.125f;
  const Inputs x = make_inputs(c.shape, sizeof(T) == 2, 5);
  const Grads one = run<T>(c, x, FlashIsa::kBest, 1), two = run<T>(c, x, FlashIsa::kBest, 2);
  auto same = [](const std::vector<double>& a, const std::vector<double>& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(double)) == 0;
  };
  EXPECT_TRUE(same(one.out, two.out));
  EXPECT_TRUE(same(one.dq, two.dq));
  EXPECT_TRUE(same(one.dk, two.dk));
  EXPECT_TRUE(same(one.dv, two.dv));
}

TEST(FlashAttention, SameBitsOnOneAndTwoThreads) {
  check_same_bits_on_two_threads<float>();
  check_same_bits_on_two_threads<std::uint16_t>();
}

// NaN semantics, as LibTorch's masked softmax and products had them: a NaN
// value that a row attends makes that row NaN; a NaN query poisons its own
// row only; a NaN key that every row has masked changes nothing (its score
// is replaced before the softmax). A NaN *value* at a masked key still meets
// 0 in the value product of rows sharing its block (0 x NaN), as in a plain
// matrix product: not tested as a guarantee either way.
TEST(FlashAttention, NanPoisoning) {
  Case c;
  c.shape = {1, 1, 1, 20, 21, 8};
  c.mask = std::vector<std::uint8_t>(20 * 21, 0);
  for (std::int64_t i = 0; i < 20; ++i)
    for (std::int64_t j = 0; j < 21; ++j) c.mask[i * 21 + j] = j == 20 || (j > i);  // key 20: masked everywhere
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (FlashIsa isa : isas()) {
    SCOPED_TRACE(int(isa));
    Inputs x = make_inputs(c.shape, false, 9);
    for (std::int64_t d = 0; d < 8; ++d) x.k[20 * 8 + d] = nan;  // masked key
    Grads g = run<float>(c, x, isa, 1);
    for (double e : g.out) EXPECT_TRUE(std::isfinite(e));
    x.q[5 * 8 + 2] = nan;  // query row 5
    g = run<float>(c, x, isa, 1);
    for (std::int64_t i = 0; i < 20; ++i)
      for (std::int64_t d = 0; d < 8; ++d)
        EXPECT_EQ(std::isnan(g.out[i * 8 + d]), i == 5) << "row " << i;
    x = make_inputs(c.shape, false, 9);
    x.v[7 * 8 + 3] = nan;  // the value of key 7, which rows 7..19 attend
    g = run<float>(c, x, isa, 1);
    for (std::int64_t i = 7; i < 20; ++i) EXPECT_TRUE(std::isnan(g.out[i * 8 + 3])) << "row " << i;
  }
}

}  // namespace
}  // namespace sparc::kernels
