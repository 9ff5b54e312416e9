// Flash-style attention on the CPU (model/flash_attention.h).
//
// Layout: every dimension a product meets is padded with zeros to a
// multiple of 32 (head_dim to hdp, lengths to Sqp, Skp), so the
// micro-kernels run whole 8 x 32 (or 4 x 32) tiles. A product's first
// operand is row-major; its second is packed, bfloat16 in pairs along the
// reduction (vdpbf16ps's layout: element (k, n) of a width-w operand at
// (k / 2) 2w + 2n + k % 2; float32 plainly row-major). Forward runs one
// task per (sequence, head, block of queries); backward one per (sequence,
// head), key blocks outermost, so that dq, dk and dv each sum in one order.
#include "model/flash_attention.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__)
#include <cpuid.h>
#include <immintrin.h>
#define SPARC_FLASH_X86 1
#else
#define SPARC_FLASH_X86 0
#endif

#include "model/simd16.h"

namespace sparc::kernels {
namespace {

using namespace simd;

constexpr std::int64_t kBQ = 64, kBK = 64;  // queries and keys per block
constexpr std::int64_t kPad = 32;
constexpr float kInf = std::numeric_limits<float>::infinity();
// A block of (queries, keys): every pair blocked (skipped), some, or none.
constexpr std::uint8_t kAllBlocked = 0, kSomeBlocked = 1, kNoneBlocked = 2;

std::int64_t round_up(std::int64_t x, std::int64_t m) { return (x + m - 1) / m * m; }

// 32-bit words over bfloat16 buffers: two adjacent elements at once.
typedef std::uint32_t word __attribute__((may_alias, aligned(2)));

template <typename T>
constexpr std::int64_t kPair = sizeof(T) == 2 ? 2 : 1;  // k per packed element group

SPARC_INLINE float to_f(float v) { return v; }
SPARC_INLINE float to_f(std::uint16_t v) { return widen(v); }
SPARC_INLINE void put(float* p, float v) { *p = v; }
SPARC_INLINE void put(std::uint16_t* p, float v) { *p = narrow(v); }

// m ? a : b per lane (m: 0 or -1), as bit operations: GCC 12 fails on the
// vector conditional here under the AVX-512 targets (an internal compiler
// error in gimple_expand_vec_cond_expr).
SPARC_INLINE vf select(vi m, vf a, vf b) { return (vf)(((vi)a & m) | ((vi)b & ~m)); }

// -1 in lanes j..j+15 that are blocked: from `valid` on, or where mask != 0
// (never read at or past `valid`).
SPARC_INLINE vi blocked_lanes(const std::uint8_t* mask, std::int64_t valid, std::int64_t j) {
  if (j + L <= valid) return mask ? load_mask(mask + j) : vi{};
  std::uint8_t lanes[L];
  for (std::int64_t t = 0; t < L; ++t)
    lanes[t] = j + t >= valid ? 1 : (mask ? mask[j + t] : 0);
  return load_mask(lanes);
}

// dst [R][C] <- src [rv][cv] (rows ld apart), zeros elsewhere.
template <typename T>
void copy_rows(const T* src, std::int64_t ld, std::int64_t rv, std::int64_t cv, T* dst,
               std::int64_t R, std::int64_t C) {
  for (std::int64_t r = 0; r < R; ++r) {
    const std::int64_t n = r < rv ? cv : 0;
    if (n > 0) std::memcpy(dst + r * C, src + r * ld, n * sizeof(T));
    std::fill(dst + r * C + n, dst + (r + 1) * C, T(0));
  }
}
// Packed K x ldb operands: element (k, n) = src[k * ld + n] (pack_rows) or
// src[n * ld + k] (pack_transposed) for k < kv and n < nv, zeros elsewhere.
template <typename T>
void pack_rows(const T* src, std::int64_t ld, std::int64_t kv, std::int64_t nv, T* dst,
               std::int64_t K, std::int64_t ldb) {
  constexpr std::int64_t P = kPair<T>;
  if constexpr (P == 1) {
    copy_rows(src, ld, kv, nv, dst, K, ldb);
  } else {  // rows k and k + 1 interleaved
    std::fill(dst, dst + K * ldb, T(0));
    for (std::int64_t k = 0; k < kv; k += 2) {
      const T* r0 = src + k * ld;
      word* out = reinterpret_cast<word*>(dst + k * ldb);
      if (k + 1 < kv)
        for (std::int64_t n = 0; n < nv; ++n) out[n] = r0[n] | std::uint32_t(r0[n + ld]) << 16;
      else
        for (std::int64_t n = 0; n < nv; ++n) out[n] = r0[n];
    }
  }
}
template <typename T>
void pack_transposed(const T* src, std::int64_t ld, std::int64_t kv, std::int64_t nv, T* dst,
                     std::int64_t K, std::int64_t ldb) {
  constexpr std::int64_t P = kPair<T>;
  std::fill(dst, dst + K * ldb, T(0));
  if (P == 2 && kv % 2 == 0 && ld % 2 == 0) {  // pairs (k, k + 1) are adjacent in src: move them as words
    const word* s32 = reinterpret_cast<const word*>(src);
    word* d32 = reinterpret_cast<word*>(dst);
    for (std::int64_t n = 0; n < nv; ++n)
      for (std::int64_t k2 = 0; k2 < kv / 2; ++k2) d32[k2 * ldb + n] = s32[n * (ld / 2) + k2];
    return;
  }
  for (std::int64_t n = 0; n < nv; ++n)
    for (std::int64_t k = 0; k < kv; ++k) dst[(k / P) * ldb * P + n * P + k % P] = src[n * ld + k];
}

// One call's operands and geometry.
template <typename T>
struct Ctx {
  AttentionShape shape;
  AttentionMask mask;
  float scale = 1.0f, cap = 0.0f;
  std::int64_t group = 1, hdp = 0, Sqp = 0, Skp = 0, nqb = 0, nkb = 0;
  const std::uint8_t* map = nullptr;  // [B or 1][nqb][nkb] block states
  bool map_per_batch = false;
  const T *q = nullptr, *k = nullptr, *v = nullptr;
  // forward
  const T *kt = nullptr, *vp = nullptr;  // per (b, kv head): k^T packed [hdp x Skp], v packed [Skp x hdp]
  T* out = nullptr;
  float* lse = nullptr;
  // backward
  const T *out_in = nullptr, *dout = nullptr;
  const float* lse_in = nullptr;
  T* dq = nullptr;
  T *dk = nullptr, *dv = nullptr;        // with one query head per kv head
  float *dkh = nullptr, *dvh = nullptr;  // else per query head [B * H][Sk][hd]
  const std::uint8_t* mask_row(std::int64_t b, std::int64_t row, std::int64_t k0) const {
    return mask.base ? mask.base + b * mask.batch_stride + row * mask.row_stride + k0 : nullptr;
  }
};

template <typename T>
struct Scratch {
  std::vector<T> t;
  std::vector<float> f;
};

// n elements of a buffer kept by the calling thread between calls (no
// allocation, page faults or zero fill per call; contents undefined).
template <typename T>
T* reused(std::vector<T>& buffer, std::int64_t n) {
  if (std::int64_t(buffer.size()) < n) buffer.resize(n);
  return buffer.data();
}

}  // namespace

// One copy of the kernels per instruction set.
#if SPARC_FLASH_X86
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,avx512bf16")
namespace isa_avx512bf16 {
namespace {
using namespace simd;
#define FLASH_MR 8
#define FLASH_DPBF16 1
#include "model/flash_attention_impl.h"
#undef FLASH_MR
#undef FLASH_DPBF16
}  // namespace
}  // namespace isa_avx512bf16
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma")
namespace isa_avx512 {
namespace {
using namespace simd;
#define FLASH_MR 8
#define FLASH_DPBF16 0
#include "model/flash_attention_impl.h"
#undef FLASH_MR
#undef FLASH_DPBF16
}  // namespace
}  // namespace isa_avx512
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx2,fma")
namespace isa_avx2 {
namespace {
using namespace simd;
#define FLASH_MR 4
#define FLASH_DPBF16 0
#include "model/flash_attention_impl.h"
#undef FLASH_MR
#undef FLASH_DPBF16
}  // namespace
}  // namespace isa_avx2
#pragma GCC pop_options
#endif

namespace isa_baseline {
namespace {
using namespace simd;
#define FLASH_MR 4
#define FLASH_DPBF16 0
#include "model/flash_attention_impl.h"
#undef FLASH_MR
#undef FLASH_DPBF16
}  // namespace
}  // namespace isa_baseline

namespace {

struct Kernels {
  void (*forward_f32)(const Ctx<float>&, Scratch<float>&, std::int64_t);
  void (*forward_bf16)(const Ctx<std::uint16_t>&, Scratch<std::uint16_t>&, std::int64_t);
  void (*backward_f32)(const Ctx<float>&, Scratch<float>&, std::int64_t);
  void (*backward_bf16)(const Ctx<std::uint16_t>&, Scratch<std::uint16_t>&, std::int64_t);
};

FlashIsa detect_isa() {
#if SPARC_FLASH_X86
  __builtin_cpu_init();
  const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
  if (avx512) {
    unsigned a = 0, b = 0, c = 0, d = 0;  // CPUID.(7,1):EAX bit 5: AVX512_BF16
    if (__get_cpuid_count(7, 1, &a, &b, &c, &d) && ((a >> 5) & 1u)) return FlashIsa::kAvx512Bf16;
    return FlashIsa::kAvx512;
  }
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return FlashIsa::kAvx2;
#endif
  return FlashIsa::kBaseline;
}

Kernels kernels_for(FlashIsa requested) {
  const FlashIsa best = flash_best_isa();
  const FlashIsa isa =
      requested == FlashIsa::kBest || int(requested) > int(best) ? best : requested;
#define SPARC_FLASH_TABLE(ns) \
  Kernels{ns::forward_f32, ns::forward_bf16, ns::backward_f32, ns::backward_bf16}
  switch (isa) {
#if SPARC_FLASH_X86
    case FlashIsa::kAvx512Bf16: return SPARC_FLASH_TABLE(isa_avx512bf16);
    case FlashIsa::kAvx512: return SPARC_FLASH_TABLE(isa_avx512);
    case FlashIsa::kAvx2: return SPARC_FLASH_TABLE(isa_avx2);
#endif
    default: return SPARC_FLASH_TABLE(isa_baseline);
  }
#undef SPARC_FLASH_TABLE
}

// Below this many multiply-adds a call runs on the calling thread.
constexpr std::int64_t kParallelWork = 1 << 20;

int team(const FlashOptions& o, std::int64_t tasks, std::int64_t work) {
  if (tasks < 2 || work < kParallelWork) return 1;
  const int n = o.threads > 0 ? o.threads : omp_get_max_threads();
  return int(std::min<std::int64_t>(n, tasks));
}

template <typename T>
void set_geometry(Ctx<T>& c, const AttentionShape& shape, const AttentionMask& mask,
                  const FlashOptions& o, std::vector<std::uint8_t>& map) {
  c.shape = shape;
  c.mask = mask;
  c.scale = o.scale;
  c.cap = o.softcap;
  c.group = shape.heads / shape.kv_heads;
  c.hdp = round_up(shape.head_dim, kPad);
  c.Sqp = round_up(shape.q_len, kPad);
  c.Skp = round_up(shape.k_len, kPad);
  c.nqb = (c.Sqp + kBQ - 1) / kBQ;
  c.nkb = (c.Skp + kBK - 1) / kBK;
  c.map_per_batch = mask.base && mask.batch_stride != 0;
  const std::int64_t mb = c.map_per_batch ? shape.batch : 1, Sq = shape.q_len, Sk = shape.k_len;
  map.assign(mb * c.nqb * c.nkb, kSomeBlocked);
  for (std::int64_t b = 0; b < mb; ++b)
    for (std::int64_t qb = 0; qb < c.nqb; ++qb)
      for (std::int64_t kb = 0; kb < c.nkb; ++kb) {
        const std::int64_t q0 = qb * kBQ, q1 = std::min(q0 + kBQ, Sq);
        const std::int64_t k0 = kb * kBK, kcols = std::min(kBK, c.Skp - k0), k1 = std::min(k0 + kBK, Sk);
        std::uint8_t some = 0, every = 1;  // any pair blocked; every pair blocked
        for (std::int64_t i = q0; mask.base && i < q1; ++i) {
          const std::uint8_t* row = mask.base + b * mask.batch_stride + i * mask.row_stride;
          for (std::int64_t j = k0; j < k1; ++j) {
            some |= row[j];
            every &= row[j];
          }
        }
        if (!mask.base) every = 0;
        map[(b * c.nqb + qb) * c.nkb + kb] =
            every ? kAllBlocked : !some && k0 + kcols <= Sk ? kNoneBlocked : kSomeBlocked;
      }
  c.map = map.data();
}

template <typename T>
void forward(const T* q, const T* k, const T* v, const AttentionShape& shape,
             const AttentionMask& mask, const FlashOptions& o, T* out, float* lse,
             void (*block)(const Ctx<T>&, Scratch<T>&, std::int64_t)) {
  Ctx<T> c;
  std::vector<std::uint8_t> map;
  set_geometry(c, shape, mask, o, map);
  c.q = q, c.k = k, c.v = v, c.out = out, c.lse = lse;
  const std::int64_t B = shape.batch, H = shape.heads, KV = shape.kv_heads, hd = shape.head_dim;
  const std::int64_t Sk = shape.k_len;
  static thread_local std::vector<T> kt_buffer, vp_buffer;
  T* kt = reused(kt_buffer, B * KV * c.hdp * c.Skp);
  T* vp = reused(vp_buffer, B * KV * c.Skp * c.hdp);
  c.kt = kt, c.vp = vp;
  const std::int64_t work = B * H * shape.q_len * Sk * hd, tasks = B * H * c.nqb;
  const int threads = team(o, tasks, work);
#pragma omp parallel num_threads(threads)
  {
#pragma omp for schedule(static)
    for (std::int64_t kv = 0; kv < B * KV; ++kv) {
      pack_transposed(k + kv * Sk * hd, hd, hd, Sk, kt + kv * c.hdp * c.Skp, c.hdp, c.Skp);
      pack_rows(v + kv * Sk * hd, hd, Sk, hd, vp + kv * c.Skp * c.hdp, c.Skp, c.hdp);
    }
    static thread_local Scratch<T> s;  // OpenMP's threads live on between calls
#pragma omp for schedule(dynamic, 1)
    for (std::int64_t t = 0; t < tasks; ++t) block(c, s, t);
  }
}

template <typename T>
void backward(const T* q, const T* k, const T* v, const T* out, const T* dout, const float* lse,
              const AttentionShape& shape, const AttentionMask& mask, const FlashOptions& o,
              T* dq, T* dk, T* dv, void (*head)(const Ctx<T>&, Scratch<T>&, std::int64_t)) {
  Ctx<T> c;
  std::vector<std::uint8_t> map;
  set_geometry(c, shape, mask, o, map);
  const std::int64_t B = shape.batch, H = shape.heads, KV = shape.kv_heads, hd = shape.head_dim;
  const std::int64_t Sk = shape.k_len;
  static thread_local std::vector<float> dkh_buffer, dvh_buffer;
  const bool grouped = c.group > 1;
  float* dkh = grouped ? reused(dkh_buffer, B * H * Sk * hd) : nullptr;
  float* dvh = grouped ? reused(dvh_buffer, B * H * Sk * hd) : nullptr;
  c.q = q, c.k = k, c.v = v, c.out_in = out, c.dout = dout, c.lse_in = lse, c.dq = dq;
  c.dk = dk, c.dv = dv, c.dkh = dkh, c.dvh = dvh;
  const int threads = team(o, B * H, B * H * shape.q_len * Sk * hd);
#pragma omp parallel num_threads(threads)
  {
    static thread_local Scratch<T> s;
#pragma omp for schedule(dynamic, 1)
    for (std::int64_t bh = 0; bh < B * H; ++bh) head(c, s, bh);
    // Grouped: dk, dv sum the group's query heads in head order.
#pragma omp for schedule(static)
    for (std::int64_t kv = 0; kv < (grouped ? B * KV : 0); ++kv) {
      const std::int64_t b = kv / KV, h0 = (kv % KV) * c.group, n = Sk * hd;
      for (std::int64_t e = 0; e < n; ++e) {
        float sk = 0.0f, sv = 0.0f;
        for (std::int64_t g = 0; g < c.group; ++g) {
          sk += dkh[((b * H + h0 + g) * n) + e];
          sv += dvh[((b * H + h0 + g) * n) + e];
        }
        put(dk + kv * n + e, sk);
        put(dv + kv * n + e, sv);
      }
    }
  }
}

}  // namespace

FlashIsa flash_best_isa() {
  static const FlashIsa best = detect_isa();
  return best;
}

void flash_attention_forward(const float* q, const float* k, const float* v,
                             const AttentionShape& shape, const AttentionMask& mask,
                             const FlashOptions& options, float* out, float* lse) {
  forward(q, k, v, shape, mask, options, out, lse, kernels_for(options.isa).forward_f32);
}
void flash_attention_forward(const std::uint16_t* q, const std::uint16_t* k,
                             const std::uint16_t* v, const AttentionShape& shape,
                             const AttentionMask& mask, const FlashOptions& options,
                             std::uint16_t* out, float* lse) {
  forward(q, k, v, shape, mask, options, out, lse, kernels_for(options.isa).forward_bf16);
}
void flash_attention_backward(const float* q, const float* k, const float* v, const float* out,
                              const float* dout, const float* lse, const AttentionShape& shape,
                              const AttentionMask& mask, const FlashOptions& options, float* dq,
                              float* dk, float* dv) {
  backward(q, k, v, out, dout, lse, shape, mask, options, dq, dk, dv,
           kernels_for(options.isa).backward_f32);
}
void flash_attention_backward(const std::uint16_t* q, const std::uint16_t* k,
                              const std::uint16_t* v, const std::uint16_t* out,
                              const std::uint16_t* dout, const float* lse,
                              const AttentionShape& shape, const AttentionMask& mask,
                              const FlashOptions& options, std::uint16_t* dq, std::uint16_t* dk,
                              std::uint16_t* dv) {
  backward(q, k, v, out, dout, lse, shape, mask, options, dq, dk, dv,
           kernels_for(options.isa).backward_bf16);
}

}  // namespace sparc::kernels
