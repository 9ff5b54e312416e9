#include "model/swiglu_kernels.h"

#include <algorithm>

#include "model/simd16.h"

namespace sparc::kernels {
namespace {

using namespace simd;

// Elements per OpenMP chunk (whole vectors), and the fewest worth a team.
constexpr std::int64_t kChunk = 1 << 14;
constexpr std::int64_t kParallelElements = 1 << 16;

SPARC_INLINE vf sigmoid_v(vf g) { return 1.0f / (1.0f + exp_v(-g)); }

// Loads and stores of n <= 16 elements (a row's tail) through a padded copy.
template <typename T>
SPARC_INLINE vf load_n(const T* p, std::int64_t n) {
  if (n == L) return load(p);
  T tmp[L] = {};
  std::copy(p, p + n, tmp);
  return load(tmp);
}
template <typename T>
SPARC_INLINE void store_n(T* p, vf v, std::int64_t n) {
  if (n == L) return store(p, v);
  T tmp[L];
  store(tmp, v);
  std::copy(tmp, tmp + n, p);
}

template <typename T>
SPARC_INLINE void forward_range(const T* g, const T* u, T* y, std::int64_t n) {
  for (std::int64_t i = 0; i < n; i += L) {
    const std::int64_t m = std::min(L, n - i);
    const vf gv = load_n(g + i, m);
    store_n(y + i, gv * sigmoid_v(gv) * load_n(u + i, m), m);
  }
}

template <typename T>
SPARC_INLINE void backward_range(const T* g, const T* u, const T* dy, T* dg, T* du, std::int64_t n) {
  for (std::int64_t i = 0; i < n; i += L) {
    const std::int64_t m = std::min(L, n - i);
    const vf gv = load_n(g + i, m), dyv = load_n(dy + i, m);
    const vf s = sigmoid_v(gv);
    store_n(du + i, dyv * gv * s, m);
    store_n(dg + i, dyv * load_n(u + i, m) * s * (1.0f + gv * (1.0f - s)), m);
  }
}

SPARC_CLONES void forward_chunk(const float* g, const float* u, float* y, std::int64_t n) {
  forward_range(g, u, y, n);
}
SPARC_CLONES void forward_chunk(const std::uint16_t* g, const std::uint16_t* u, std::uint16_t* y,
                                std::int64_t n) {
  forward_range(g, u, y, n);
}
SPARC_CLONES void backward_chunk(const float* g, const float* u, const float* dy, float* dg,
                                 float* du, std::int64_t n) {
  backward_range(g, u, dy, dg, du, n);
}
SPARC_CLONES void backward_chunk(const std::uint16_t* g, const std::uint16_t* u,
                                 const std::uint16_t* dy, std::uint16_t* dg, std::uint16_t* du,
                                 std::int64_t n) {
  backward_range(g, u, dy, dg, du, n);
}

template <typename T>
void forward_all(const T* g, const T* u, T* y, std::int64_t n) {
  const std::int64_t chunks = (n + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static) if (n >= kParallelElements)
  for (std::int64_t c = 0; c < chunks; ++c) {
    const std::int64_t i = c * kChunk;
    forward_chunk(g + i, u + i, y + i, std::min(kChunk, n - i));
  }
}

template <typename T>
void backward_all(const T* g, const T* u, const T* dy, T* dg, T* du, std::int64_t n) {
  const std::int64_t chunks = (n + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static) if (n >= kParallelElements)
  for (std::int64_t c = 0; c < chunks; ++c) {
    const std::int64_t i = c * kChunk;
    backward_chunk(g + i, u + i, dy + i, dg + i, du + i, std::min(kChunk, n - i));
  }
}

}  // namespace

void swiglu_forward(const float* g, const float* u, float* y, std::int64_t n) {
  forward_all(g, u, y, n);
}
void swiglu_forward(const std::uint16_t* g, const std::uint16_t* u, std::uint16_t* y,
                    std::int64_t n) {
  forward_all(g, u, y, n);
}
void swiglu_backward(const float* g, const float* u, const float* dy, float* dg, float* du,
                     std::int64_t n) {
  backward_all(g, u, dy, dg, du, n);
}
void swiglu_backward(const std::uint16_t* g, const std::uint16_t* u, const std::uint16_t* dy,
                     std::uint16_t* dg, std::uint16_t* du, std::int64_t n) {
  backward_all(g, u, dy, dg, du, n);
}

}  // namespace sparc::kernels
