#include "model/softmax_kernels.h"

#include "model/simd16.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

// The row loops run on the 16-float vectors of model/simd16.h, so that
// they are vectorized whatever the optimizer decides, and are built for
// several instruction sets (SPARC_CLONES).

namespace sparc::kernels {
namespace {

using namespace simd;

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
