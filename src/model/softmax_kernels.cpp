#include "model/softmax_kernels.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

// The row loops run on 16-float GCC/Clang vectors (one AVX-512 register, two
// AVX2 ones, four SSE ones), so that they are vectorized whatever the
// optimizer decides; target_clones builds them for AVX-512, AVX2 and
// baseline x86-64 and the loader picks the widest the CPU supports.
#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__)
#define SPARC_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define SPARC_CLONES
#endif
#define SPARC_INLINE inline __attribute__((always_inline))

namespace sparc::kernels {
namespace {

constexpr std::int64_t L = 16;  // floats per vector
typedef float vf __attribute__((vector_size(64)));
typedef std::int32_t vi __attribute__((vector_size(64)));
typedef std::uint32_t vu __attribute__((vector_size(64)));
typedef std::uint16_t vh __attribute__((vector_size(32)));
typedef std::uint8_t vb __attribute__((vector_size(16)));

constexpr float kMinusInf = -std::numeric_limits<float>::infinity();
constexpr float kMinNormal = std::numeric_limits<float>::min();

SPARC_INLINE vf splat(float s) { return vf{} + s; }
SPARC_INLINE vf load(const float* p) {
  vf v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
SPARC_INLINE void store(float* p, vf v) { std::memcpy(p, &v, sizeof v); }
SPARC_INLINE vf load(const std::uint16_t* p) {  // bfloat16 bits -> float32
  vh h;
  std::memcpy(&h, p, sizeof h);
  return (vf)(__builtin_convertvector(h, vu) << 16);
}
SPARC_INLINE void store(std::uint16_t* p, vf f) {  // float32 -> bfloat16, nearest even
  const vu u = (vu)f;
  vu r = (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
  r = (u & 0x7FFFFFFFu) > 0x7F800000u ? vu{} + 0x7FC0u : r;  // NaN stays NaN
  const vh h = __builtin_convertvector(r, vh);
  std::memcpy(p, &h, sizeof h);
}
SPARC_INLINE vi load_mask(const std::uint8_t* p) {  // -1 where blocked
  vb b;
  std::memcpy(&b, p, sizeof b);
  return __builtin_convertvector(b, vi) != 0;
}
SPARC_INLINE float hmax(vf v) {
  float m = v[0];
  for (int i = 1; i < L; ++i) m = v[i] > m ? v[i] : m;
  return m;
}
SPARC_INLINE float hsum(vf v) {
  float s = 0.0f;
  for (int i = 0; i < L; ++i) s += v[i];
  return s;
}

// Results below float32's normal range become 0: subnormal probabilities
// and gradients carry nothing a step can use, and every later operator that
// meets them runs many times slower on x86.
SPARC_INLINE vf flush(vf v) { return (vf)((vu)v & 0x7FFFFFFFu) < kMinNormal ? vf{} : v; }
SPARC_INLINE float flush(float v) { return std::abs(v) < kMinNormal ? 0.0f : v; }

// exp(x): x = n ln2 + r with |r| <= ln2/2, exp(r) by Cephes' expf
// polynomial, 2^n built in the exponent bits. Below -87.3 (where 2^n would
// leave the normal range) the result is 0; NaN stays NaN.
SPARC_INLINE vf exp_v(vf x) {
  vf xc = x < -87.3f ? splat(-87.3f) : x;
  xc = xc > 88.3f ? splat(88.3f) : xc;
  xc = xc == xc ? xc : vf{};  // NaN: keep the integer conversion below in range
  const vf t = xc * 1.44269504088896341f + 0.5f;
  vi n = __builtin_convertvector(t, vi);      // toward zero
  n += __builtin_convertvector(n, vf) > t;    // -1 where that rounded up: floor
  const vf fn = __builtin_convertvector(n, vf);
  const vf r = xc - fn * 0.693359375f + fn * 2.12194440e-4f;
  vf y = splat(1.9875691500e-4f);
  y = y * r + 1.3981999507e-3f;
  y = y * r + 8.3334519073e-3f;
  y = y * r + 4.1665795894e-2f;
  y = y * r + 1.6666665459e-1f;
  y = y * r + 5.0000001201e-1f;
  y = y * r * r + r + 1.0f;
  y *= (vf)((n + 127) << 23);
  y = x < -87.3f ? vf{} : y;
  return x != x ? x : y;
}

// tanh(y) = 1 - 2 / (exp(2y) + 1): exact limits +-1 where exp saturates;
// absolute error a few float32 ulp of 1.
SPARC_INLINE vf tanh_v(vf y) { return 1.0f - 2.0f / (exp_v(y + y) + 1.0f); }

SPARC_INLINE float widen(std::uint16_t b) {
  const std::uint32_t u = std::uint32_t(b) << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}
SPARC_INLINE std::uint16_t narrow(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  const std::uint32_t rounded = (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
  return (u & 0x7FFFFFFFu) > 0x7F800000u ? std::uint16_t(0x7FC0) : std::uint16_t(rounded);
}
SPARC_INLINE float to_float(float v) { return v; }
SPARC_INLINE float to_float(std::uint16_t v) { return widen(v); }
SPARC_INLINE void from_float(float* p, float v) { *p = v; }
SPARC_INLINE void from_float(std::uint16_t* p, float v) { *p = narrow(v); }

// cap > 0: scores c tanh(s x / c) (Gemma 2's soft-capping), tanh kept in
// `th` (0 where blocked) for the backward.
template <typename T>
SPARC_INLINE void softmax_row(T* x, const std::uint8_t* blocked, std::int64_t n, float scale,
                              float* tmp, float cap = 0.0f, float* th = nullptr) {
  const std::int64_t full = n / L * L, padded = (n + L - 1) / L * L;
  vf vmax = splat(kMinusInf);
  for (std::int64_t j = 0; j < full; j += L) {
    const vi masked = load_mask(blocked + j);
    vf v = load(x + j) * scale;
    if (cap > 0.0f) {
      const vf t = masked ? vf{} : tanh_v(v / cap);
      store(th + j, t);
      v = t * cap;
    }
    v = masked ? splat(kMinusInf) : v;
    store(tmp + j, v);
    vmax = v > vmax ? v : vmax;
  }
  float m = hmax(vmax);
  for (std::int64_t j = full; j < n; ++j) {
    float v = to_float(x[j]) * scale;
    if (cap > 0.0f) {
      float rest[L] = {v / cap};
      const float t = blocked[j] ? 0.0f : tanh_v(load(rest))[0];
      th[j] = t;
      v = t * cap;
    }
    tmp[j] = blocked[j] ? kMinusInf : v;
    m = tmp[j] > m ? tmp[j] : m;
  }
  for (std::int64_t j = n; j < padded; ++j) tmp[j] = kMinusInf;  // exp gives 0 there
  if (m == kMinusInf) {                                          // every key blocked
    std::fill(x, x + n, T(0));
    return;
  }
  vf vsum{};
  for (std::int64_t j = 0; j < padded; j += L) {
    const vf e = exp_v(load(tmp + j) - m);
    store(tmp + j, e);
    vsum += e;
  }
  const float inv = 1.0f / hsum(vsum);
  for (std::int64_t j = 0; j < full; j += L) store(x + j, flush(load(tmp + j) * inv));
  for (std::int64_t j = full; j < n; ++j) from_float(x + j, flush(tmp[j] * inv));
}

// th: the forward's tanh of a soft-capped row (its derivative 1 - th^2), or null.
template <typename T>
SPARC_INLINE void backward_row(T* g, const T* p, std::int64_t n, float scale,
                               const float* th = nullptr) {
  const std::int64_t full = n / L * L;
  vf vdot{};
  for (std::int64_t j = 0; j < full; j += L) vdot += load(p + j) * load(g + j);
  float dot = hsum(vdot);
  for (std::int64_t j = full; j < n; ++j) dot += to_float(p[j]) * to_float(g[j]);
  for (std::int64_t j = 0; j < full; j += L) {
    vf d = load(p + j) * (load(g + j) - dot) * scale;
    if (th) d *= 1.0f - load(th + j) * load(th + j);
    store(g + j, flush(d));
  }
  for (std::int64_t j = full; j < n; ++j) {
    float d = to_float(p[j]) * (to_float(g[j]) - dot) * scale;
    if (th) d *= 1.0f - th[j] * th[j];
    from_float(g + j, flush(d));
  }
}

}  // namespace

std::int64_t softmax_scratch(std::int64_t n) { return (n + L - 1) / L * L; }

float bf16_to_float(std::uint16_t b) { return widen(b); }
std::uint16_t float_to_bf16(float f) { return narrow(f); }

SPARC_CLONES void exp_inplace(float* x, std::int64_t n) {
  const std::int64_t full = n / L * L;
  for (std::int64_t j = 0; j < full; j += L) store(x + j, exp_v(load(x + j)));
  if (full == n) return;
  float rest[L] = {};
  std::copy(x + full, x + n, rest);
  store(rest, exp_v(load(rest)));
  std::copy(rest, rest + (n - full), x + full);
}

SPARC_CLONES void masked_softmax_row(float* x, const std::uint8_t* blocked, std::int64_t n,
                                     float scale, float* tmp) {
  softmax_row(x, blocked, n, scale, tmp);
}
SPARC_CLONES void masked_softmax_row(std::uint16_t* x, const std::uint8_t* blocked,
                                     std::int64_t n, float scale, float* tmp) {
  softmax_row(x, blocked, n, scale, tmp);
}
SPARC_CLONES void capped_softmax_row(float* x, const std::uint8_t* blocked, std::int64_t n,
                                     float scale, float cap, float* th, float* tmp) {
  softmax_row(x, blocked, n, scale, tmp, cap, th);
}
SPARC_CLONES void capped_softmax_row(std::uint16_t* x, const std::uint8_t* blocked,
                                     std::int64_t n, float scale, float cap, float* th,
                                     float* tmp) {
  softmax_row(x, blocked, n, scale, tmp, cap, th);
}
SPARC_CLONES void capped_softmax_backward_row(float* g, const float* p, const float* th,
                                              std::int64_t n, float scale) {
  backward_row(g, p, n, scale, th);
}
SPARC_CLONES void capped_softmax_backward_row(std::uint16_t* g, const std::uint16_t* p,
                                              const float* th, std::int64_t n, float scale) {
  backward_row(g, p, n, scale, th);
}
SPARC_CLONES void softmax_backward_row(float* g, const float* p, std::int64_t n, float scale) {
  backward_row(g, p, n, scale);
}
SPARC_CLONES void softmax_backward_row(std::uint16_t* g, const std::uint16_t* p, std::int64_t n,
                                       float scale) {
  backward_row(g, p, n, scale);
}

namespace {

// Below this many elements a block runs on the calling thread: waking the
// team costs more than the rows.
constexpr std::int64_t kParallelElements = 1 << 15;

template <typename T>
void softmax_rows(T* x, std::int64_t count, std::int64_t n, const MaskLayout& mask, float scale,
                  float cap = 0.0f, float* th = nullptr) {
#pragma omp parallel if (count * n >= kParallelElements)
  {
    std::vector<float> tmp(softmax_scratch(n));
#pragma omp for schedule(static)
    for (std::int64_t i = 0; i < count; ++i) {
      const std::uint8_t* m =
          mask.base + (i / mask.rows / mask.heads) * mask.batch_stride + (i % mask.rows) * mask.row_stride;
      if (cap > 0.0f)
        capped_softmax_row(x + i * n, m, n, scale, cap, th + i * n, tmp.data());
      else
        masked_softmax_row(x + i * n, m, n, scale, tmp.data());
    }
  }
}

template <typename T>
void backward_rows(T* g, const T* p, std::int64_t count, std::int64_t n, float scale,
                   const float* th = nullptr) {
#pragma omp parallel for schedule(static) if (count * n >= kParallelElements)
  for (std::int64_t i = 0; i < count; ++i) {
    if (th)
      capped_softmax_backward_row(g + i * n, p + i * n, th + i * n, n, scale);
    else
      softmax_backward_row(g + i * n, p + i * n, n, scale);
  }
}

}  // namespace

void masked_softmax_rows(float* x, std::int64_t count, std::int64_t n, const MaskLayout& mask,
                         float scale) {
  softmax_rows(x, count, n, mask, scale);
}
void masked_softmax_rows(std::uint16_t* x, std::int64_t count, std::int64_t n,
                         const MaskLayout& mask, float scale) {
  softmax_rows(x, count, n, mask, scale);
}
void softmax_backward_rows(float* g, const float* p, std::int64_t count, std::int64_t n,
                           float scale) {
  backward_rows(g, p, count, n, scale);
}
void softmax_backward_rows(std::uint16_t* g, const std::uint16_t* p, std::int64_t count,
                           std::int64_t n, float scale) {
  backward_rows(g, p, count, n, scale);
}
void capped_softmax_rows(float* x, std::int64_t count, std::int64_t n, const MaskLayout& mask,
                         float scale, float cap, float* th) {
  softmax_rows(x, count, n, mask, scale, cap, th);
}
void capped_softmax_rows(std::uint16_t* x, std::int64_t count, std::int64_t n,
                         const MaskLayout& mask, float scale, float cap, float* th) {
  softmax_rows(x, count, n, mask, scale, cap, th);
}
void capped_softmax_backward_rows(float* g, const float* p, const float* th, std::int64_t count,
                                  std::int64_t n, float scale) {
  backward_rows(g, p, count, n, scale, th);
}
void capped_softmax_backward_rows(std::uint16_t* g, const std::uint16_t* p, const float* th,
                                  std::int64_t count, std::int64_t n, float scale) {
  backward_rows(g, p, count, n, scale, th);
}

}  // namespace sparc::kernels
