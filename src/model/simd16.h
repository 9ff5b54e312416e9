// 16-float GCC/Clang vectors (one AVX-512 register, two AVX2 ones, four SSE
// ones) and the element functions attention's CPU kernels share
// (model/softmax_kernels.cpp, model/flash_attention.cpp). Everything is
// inlined into its caller, so one body serves every instruction set the
// caller is built for (target_clones or #pragma GCC target). Torch-free.
#pragma once

#include <cstdint>
#include <cstring>
#include <limits>

#define SPARC_INLINE inline __attribute__((always_inline))

// Marks a kernel entry point to be built for AVX-512, AVX2 and baseline
// x86-64; the loader picks the widest the CPU supports.
#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__)
#define SPARC_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define SPARC_CLONES
#endif

namespace sparc::kernels::simd {

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
SPARC_INLINE vu to_bf16_bits(vf f) {  // float32 -> bfloat16 bits (low halves), nearest even
  const vu u = (vu)f;
  const vu r = (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
  return (u & 0x7FFFFFFFu) > 0x7F800000u ? vu{} + 0x7FC0u : r;  // NaN stays NaN
}
SPARC_INLINE void store(std::uint16_t* p, vf f) {
  const vh h = __builtin_convertvector(to_bf16_bits(f), vh);
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
SPARC_INLINE float flush(float v) { return (v < 0 ? -v : v) < kMinNormal ? 0.0f : v; }

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

}  // namespace sparc::kernels::simd
