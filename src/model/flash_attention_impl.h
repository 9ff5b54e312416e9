// The instruction-set-specific half of model/flash_attention.cpp: included
// there once per instruction set, inside its own namespace and under its
// `#pragma GCC target`, so that every function here (all inlined into the
// four entry points at the end) is built for that set. Expects FLASH_MR
// (rows per micro-kernel: 8 where 32 vector registers hold them) and
// FLASH_DPBF16 (1: bfloat16 products by vdpbf16ps). No include guard.

// C[MR x 32] (+)= A[MR x K] B[K x 32]: A's element (r, k) at r lda + k ldk
// (bfloat16: its pair (r, k / 2) at r lda + (k / 2) ldk, so a packed operand
// serves transposed too), B packed (its width ldb, in pairs of k for
// bfloat16: see pack_rows).
SPARC_INLINE void micro(const float* A, std::int64_t lda, std::int64_t ldk, const float* B, std::int64_t ldb,
                        float* C, std::int64_t ldc, std::int64_t K, bool accumulate) {
  vf c[FLASH_MR][2];
  for (int r = 0; r < FLASH_MR; ++r) {
    c[r][0] = accumulate ? load(C + r * ldc) : vf{};
    c[r][1] = accumulate ? load(C + r * ldc + L) : vf{};
  }
  for (std::int64_t k = 0; k < K; ++k) {
    const vf b0 = load(B + k * ldb), b1 = load(B + k * ldb + L);
    for (int r = 0; r < FLASH_MR; ++r) {
      const vf a = splat(A[r * lda + k * ldk]);
      c[r][0] += a * b0;
      c[r][1] += a * b1;
    }
  }
  for (int r = 0; r < FLASH_MR; ++r) {
    store(C + r * ldc, c[r][0]);
    store(C + r * ldc + L, c[r][1]);
  }
}

SPARC_INLINE void micro(const std::uint16_t* A, std::int64_t lda, std::int64_t ldk, const std::uint16_t* B,
                        std::int64_t ldb, float* C, std::int64_t ldc, std::int64_t K,
                        bool accumulate) {
  vf c[FLASH_MR][2];
  for (int r = 0; r < FLASH_MR; ++r) {
    c[r][0] = accumulate ? load(C + r * ldc) : vf{};
    c[r][1] = accumulate ? load(C + r * ldc + L) : vf{};
  }
  for (std::int64_t k2 = 0; k2 < K / 2; ++k2) {
    const std::uint16_t* b = B + k2 * ldb * 2;
#if FLASH_DPBF16
    const __m512bh b0 = (__m512bh)_mm512_loadu_si512(b), b1 = (__m512bh)_mm512_loadu_si512(b + 32);
    for (int r = 0; r < FLASH_MR; ++r) {
      std::uint32_t pair;
      std::memcpy(&pair, A + r * lda + k2 * ldk, sizeof pair);
      const __m512bh a = (__m512bh)_mm512_set1_epi32(int(pair));
      c[r][0] = (vf)_mm512_dpbf16_ps((__m512)c[r][0], a, b0);
      c[r][1] = (vf)_mm512_dpbf16_ps((__m512)c[r][1], a, b1);
    }
#else
    vu w0, w1;
    std::memcpy(&w0, b, sizeof w0);
    std::memcpy(&w1, b + 32, sizeof w1);
    const vf e0 = (vf)(w0 << 16), o0 = (vf)(w0 & 0xFFFF0000u);
    const vf e1 = (vf)(w1 << 16), o1 = (vf)(w1 & 0xFFFF0000u);
    for (int r = 0; r < FLASH_MR; ++r) {
      const vf ae = splat(widen(A[r * lda + k2 * ldk])), ao = splat(widen(A[r * lda + k2 * ldk + 1]));
      c[r][0] += ae * e0 + ao * o0;
      c[r][1] += ae * e1 + ao * o1;
    }
#endif
  }
  for (int r = 0; r < FLASH_MR; ++r) {
    store(C + r * ldc, c[r][0]);
    store(C + r * ldc + L, c[r][1]);
  }
}

// C[M x N] (+)= A[M x K] B[K x N] (A, B as in micro); M a multiple of
// FLASH_MR, N of 32, K of 2.
// Not templates, so that each is built for this file's instruction set.
#define SPARC_FLASH_GEMM(T)                                                                     \
  void gemm(const T* A, std::int64_t lda, std::int64_t ldk, const T* B, std::int64_t ldb, float* C, \
            std::int64_t ldc, std::int64_t M, std::int64_t N, std::int64_t K, bool accumulate) { \
    for (std::int64_t n = 0; n < N; n += 2 * L)                                                 \
      for (std::int64_t i = 0; i < M; i += FLASH_MR)                                            \
        micro(A + i * lda, lda, ldk, B + n * kPair<T>, ldb, C + i * ldc + n, ldc, K, accumulate); \
  }
SPARC_FLASH_GEMM(float)
SPARC_FLASH_GEMM(std::uint16_t)
#undef SPARC_FLASH_GEMM

// Scores of one row of a block, in place: s <- scale s, soft-capped when
// cap > 0, -inf where blocked (keys from `valid` on, or mask[j]). Returns
// the row's largest score, or NaN when a score is NaN (so that the row's
// output becomes NaN, however many of its scores are).
SPARC_INLINE float score_row(float* s, std::int64_t n, const std::uint8_t* mask,
                             std::int64_t valid, float scale, float cap) {
  vf vmax = splat(kMinusInf);
  vi nan{};
  for (std::int64_t j = 0; j < n; j += L) {
    vf x = load(s + j) * scale;
    if (cap > 0.0f) x = tanh_v(x / cap) * cap;
    x = select(blocked_lanes(mask, valid, j), splat(kMinusInf), x);
    store(s + j, x);
    vmax = select(x > vmax, x, vmax);
    nan |= x != x;
  }
  for (int t = 0; t < L; ++t)
    if (nan[t]) return std::numeric_limits<float>::quiet_NaN();
  return hmax(vmax);
}

// p <- exp(s - m) (storage T); returns the sum of the float32 values.
template <typename T>
SPARC_INLINE float exp_row(const float* s, T* p, std::int64_t n, float m) {
  vf sum{};
  for (std::int64_t j = 0; j < n; j += L) {
    const vf e = exp_v(load(s + j) - m);
    store(p + j, e);
    sum += e;
  }
  return hsum(sum);
}

// One row of a block in backward, in place: s (raw products) <- p =
// exp(score - lse), dp (dout . v) <- the score gradient p (dp - D) scale
// (times 1 - tanh^2 when soft-capped); both 0 where blocked.
SPARC_INLINE void grad_row(float* s, float* dp, std::int64_t n, const std::uint8_t* mask,
                           std::int64_t valid, float scale, float cap, float lse, float D) {
  for (std::int64_t j = 0; j < n; j += L) {
    vf x = load(s + j) * scale, d = splat(scale);
    if (cap > 0.0f) {
      const vf t = tanh_v(x / cap);
      x = t * cap;
      d *= 1.0f - t * t;
    }
    const vi blocked = blocked_lanes(mask, valid, j);
    const vf p = select(blocked, vf{}, flush(exp_v(x - lse)));
    const vf ds = select(blocked, vf{}, flush(p * (load(dp + j) - D) * d));
    store(s + j, p);
    store(dp + j, ds);
  }
}

// Rows i and i + 1 of a float32 block into storage T, row-major (a, b) and,
// for bfloat16, also as the packed B operand `pk` (k = row) at row pair i / 2.
SPARC_INLINE void store_rows(const float* r0, const float* r1, float* a, float* b, float*,
                             std::int64_t n) {
  std::memcpy(a, r0, n * sizeof(float));
  std::memcpy(b, r1, n * sizeof(float));
}
SPARC_INLINE void store_rows(const float* r0, const float* r1, std::uint16_t* a, std::uint16_t* b,
                             std::uint16_t* pk, std::int64_t n) {
  for (std::int64_t j = 0; j < n; j += L) {
    const vu u0 = to_bf16_bits(load(r0 + j)), u1 = to_bf16_bits(load(r1 + j));
    store(a + j, load(r0 + j));
    store(b + j, load(r1 + j));
    const vu w = u0 | (u1 << 16);
    std::memcpy(pk + 2 * j, &w, sizeof w);
  }
}

// dst [rows][n] (storage T or float32) <- src [rows][ld] (float32).
template <typename T>
SPARC_INLINE void put_rows(const float* src, std::int64_t ld, T* dst, std::int64_t n,
                           std::int64_t rows) {
  for (std::int64_t i = 0; i < rows; ++i) {
    std::int64_t d = 0;
    for (; d + L <= n; d += L) store(dst + i * n + d, load(src + i * ld + d));
    for (; d < n; ++d) put(dst + i * n + d, src[i * ld + d]);
  }
}

// Forward for one block of kBQ query rows of one head (task: (b, h, block)).
template <typename T>
SPARC_INLINE void forward_block(const Ctx<T>& c, Scratch<T>& s, std::int64_t task) {
  const auto& sh = c.shape;
  const std::int64_t qb = task % c.nqb, bh = task / c.nqb, b = bh / sh.heads;
  const std::int64_t kvh = (bh % sh.heads) / c.group, hd = sh.head_dim, hdp = c.hdp;
  const std::int64_t q0 = qb * kBQ, mrows = std::min(kBQ, c.Sqp - q0);
  const std::int64_t rows = std::min(kBQ, sh.q_len - q0);
  constexpr std::int64_t P = kPair<T>;
  s.t.resize(kBQ * hdp + kBQ * kBK);
  s.f.resize(kBQ * hdp + kBQ * kBK + 2 * kBQ);
  T* qa = s.t.data();
  T* pb = qa + kBQ * hdp;
  float* acc = s.f.data();
  float* sc = acc + kBQ * hdp;
  float* m = sc + kBQ * kBK;
  float* l = m + kBQ;
  copy_rows(c.q + (bh * sh.q_len + q0) * hd, hd, rows, hd, qa, mrows, hdp);
  std::fill(acc, acc + mrows * hdp, 0.0f);
  std::fill(m, m + kBQ, kMinusInf);
  std::fill(l, l + kBQ, 0.0f);
  std::fill(pb + rows * kBK, pb + mrows * kBK, T(0));
  const std::int64_t kv = b * sh.kv_heads + kvh;
  const T* kt = c.kt + kv * hdp * c.Skp;
  const T* vp = c.vp + kv * c.Skp * hdp;
  const std::uint8_t* map = c.map + (c.map_per_batch ? b : 0) * c.nqb * c.nkb + qb * c.nkb;
  for (std::int64_t kb = 0; kb < c.nkb; ++kb) {
    const std::uint8_t state = map[kb];
    if (state == kAllBlocked) continue;
    const std::int64_t k0 = kb * kBK, kcols = std::min(kBK, c.Skp - k0);
    gemm(qa, hdp, P, kt + k0 * kPair<T>, c.Skp, sc, kBK, mrows, kcols, hdp, false);
    for (std::int64_t i = 0; i < rows; ++i) {
      float* srow = sc + i * kBK;
      T* prow = pb + i * kBK;
      const bool open = state == kNoneBlocked;
      const float mx = score_row(srow, kcols, open ? nullptr : c.mask_row(b, q0 + i, k0),
                                 open ? kcols : sh.k_len - k0, c.scale, c.cap);
      const float mnew = mx != mx ? mx : std::max(m[i], mx);  // NaN stays (max(NaN, x) is NaN)
      if (mnew == kMinusInf) {  // nothing unmasked yet in this row
        std::fill(prow, prow + kcols, T(0));
        continue;
      }
      const float alpha = m[i] == mnew ? 1.0f : exp_v(splat(m[i] - mnew))[0];
      const float sum = exp_row(srow, prow, kcols, mnew);
      l[i] = l[i] * alpha + sum;
      if (alpha != 1.0f)
        for (std::int64_t d = 0; d < hdp; d += L) store(acc + i * hdp + d, load(acc + i * hdp + d) * alpha);
      m[i] = mnew;
    }
    gemm(pb, kBK, P, vp + k0 * hdp, hdp, acc, hdp, mrows, hdp, kcols, true);
  }
  for (std::int64_t i = 0; i < rows; ++i) {
    const float inv = l[i] == 0.0f ? 0.0f : 1.0f / l[i];  // NaN stays NaN
    T* orow = c.out + (bh * sh.q_len + q0 + i) * hd;
    for (std::int64_t d = 0; d < hd; ++d) put(orow + d, acc[i * hdp + d] * inv);
    c.lse[bh * sh.q_len + q0 + i] = l[i] == 0.0f ? kInf : m[i] + std::log(l[i]);
  }
}

// Backward for one head (task: b * heads + h): dq, and this head's share of
// dk and dv (float32, summed over the group's heads afterwards). Key blocks
// outermost; dq accumulates over them in order.
template <typename T>
SPARC_INLINE void backward_head(const Ctx<T>& c, Scratch<T>& s, std::int64_t bh) {
  const auto& sh = c.shape;
  const std::int64_t b = bh / sh.heads, kv = b * sh.kv_heads + (bh % sh.heads) / c.group;
  const std::int64_t Sq = sh.q_len, Sk = sh.k_len, hd = sh.head_dim, hdp = c.hdp;
  const std::int64_t Sqp = c.Sqp, Skp = c.Skp, blk = kBQ * kBK;
  constexpr std::int64_t P = kPair<T>;
  s.t.resize(4 * Sqp * hdp + 3 * hdp * Skp + 4 * blk);
  s.f.resize(Sqp * hdp + 2 * hdp * kBK + 2 * blk + Sqp);
  T* qa = s.t.data();          // q rows [Sqp][hdp]: A of the scores
  T* da = qa + Sqp * hdp;      // dout rows: A of dp
  // B of dk = ds^T q and dv = p^T dout: q and dout packed by rows (float32:
  // qa and da themselves); their A, ds and p, read transposed.
  T* qt = P == 1 ? qa : da + Sqp * hdp;
  T* dt = P == 1 ? da : da + 2 * Sqp * hdp;
  const std::int64_t alda = P == 1 ? 1 : 2, aldk = P == 1 ? kBK : 2 * kBK;
  T* kt = dt + Sqp * hdp;      // k^T packed: B of the scores
  T* vt = kt + hdp * Skp;      // v^T packed: B of dp
  T* kp = vt + hdp * Skp;      // k packed: B of dq
  T* pb = kp + Skp * hdp;      // p rows [kBQ][kBK]
  T* ppk = pb + blk;           // p packed: B of dv^T
  T* dsb = ppk + blk;          // ds rows: A of dq
  T* dspk = dsb + blk;         // ds packed: B of dk^T
  if (P == 1) ppk = pb, dspk = dsb;  // float32: packed is row-major
  float* dq = s.f.data();
  float* dvt = dq + Sqp * hdp;  // this key block's dv, dk [kBK][hdp]
  float* dkt = dvt + hdp * kBK;
  float* sc = dkt + hdp * kBK;
  float* dp = sc + blk;
  float* D = dp + blk;
  const T* q = c.q + bh * Sq * hd;
  const T* dout = c.dout + bh * Sq * hd;
  const T* out = c.out_in + bh * Sq * hd;
  const T* k = c.k + kv * Sk * hd;
  const T* v = c.v + kv * Sk * hd;
  const float* lse = c.lse_in + bh * Sq;
  copy_rows(q, hd, Sq, hd, qa, Sqp, hdp);
  copy_rows(dout, hd, Sq, hd, da, Sqp, hdp);
  if (P == 2) {
    pack_rows(q, hd, Sq, hd, qt, Sqp, hdp);
    pack_rows(dout, hd, Sq, hd, dt, Sqp, hdp);
  }
  pack_transposed(k, hd, hd, Sk, kt, hdp, Skp);
  pack_transposed(v, hd, hd, Sk, vt, hdp, Skp);
  pack_rows(k, hd, Sk, hd, kp, Skp, hdp);
  std::fill(D, D + Sqp, 0.0f);
  for (std::int64_t i = 0; i < Sq; ++i) {  // D_i = dout_i . out_i = sum_j p_ij dp_ij
    vf sum{};
    std::int64_t d = 0;
    for (; d + L <= hd; d += L) sum += load(dout + i * hd + d) * load(out + i * hd + d);
    D[i] = hsum(sum);
    for (; d < hd; ++d) D[i] += to_f(dout[i * hd + d]) * to_f(out[i * hd + d]);
  }
  std::fill(dq, dq + Sqp * hdp, 0.0f);
  const std::uint8_t* map = c.map + (c.map_per_batch ? b : 0) * c.nqb * c.nkb;
  for (std::int64_t kb = 0; kb < c.nkb; ++kb) {
    const std::int64_t k0 = kb * kBK, kcols = std::min(kBK, Skp - k0);
    std::fill(dvt, dvt + 2 * hdp * kBK, 0.0f);  // dvt and dkt
    for (std::int64_t qb = 0; qb < c.nqb; ++qb) {
      const std::uint8_t state = map[qb * c.nkb + kb];
      if (state == kAllBlocked) continue;
      const std::int64_t q0 = qb * kBQ, mrows = std::min(kBQ, Sqp - q0);
      const std::int64_t rows = std::min(kBQ, Sq - q0);
      gemm(qa + q0 * hdp, hdp, P, kt + k0 * P, Skp, sc, kBK, mrows, kcols, hdp, false);
      gemm(da + q0 * hdp, hdp, P, vt + k0 * P, Skp, dp, kBK, mrows, kcols, hdp, false);
      const bool open = state == kNoneBlocked;
      for (std::int64_t i = 0; i < mrows; ++i) {
        float* srow = sc + i * kBK;
        float* drow = dp + i * kBK;
        if (i < rows)
          grad_row(srow, drow, kcols, open ? nullptr : c.mask_row(b, q0 + i, k0),
                   open ? kcols : Sk - k0, c.scale, c.cap, lse[q0 + i], D[q0 + i]);
        else {  // padding rows: nothing flows
          std::fill(srow, srow + kcols, 0.0f);
          std::fill(drow, drow + kcols, 0.0f);
        }
      }
      for (std::int64_t i = 0; i < mrows; i += 2) {
        store_rows(sc + i * kBK, sc + (i + 1) * kBK, pb + i * kBK, pb + (i + 1) * kBK,
                   ppk + i * kBK, kcols);
        store_rows(dp + i * kBK, dp + (i + 1) * kBK, dsb + i * kBK, dsb + (i + 1) * kBK,
                   dspk + i * kBK, kcols);
      }
      // Packed with width kBK: element (i, j) at (i / P) kBK P + j P + i % P.
      // dv += p^T dout, dk += ds^T q: p and ds read transposed from their packed form.
      gemm(ppk, alda, aldk, dt + q0 * hdp, hdp, dvt, hdp, kcols, hdp, mrows, true);
      gemm(dspk, alda, aldk, qt + q0 * hdp, hdp, dkt, hdp, kcols, hdp, mrows, true);
      gemm(dsb, kBK, P, kp + k0 * hdp, hdp, dq + q0 * hdp, hdp, mrows, hdp, kcols, true);
    }
    const std::int64_t keys = std::min(kBK, Sk - k0);
    if (c.group == 1) {  // this head's dk, dv are the results
      put_rows(dkt, hdp, c.dk + (bh * Sk + k0) * hd, hd, keys);
      put_rows(dvt, hdp, c.dv + (bh * Sk + k0) * hd, hd, keys);
    } else {
      put_rows(dkt, hdp, c.dkh + (bh * Sk + k0) * hd, hd, keys);
      put_rows(dvt, hdp, c.dvh + (bh * Sk + k0) * hd, hd, keys);
    }
  }
  put_rows(dq, hdp, c.dq + bh * Sq * hd, hd, Sq);
}

void forward_f32(const Ctx<float>& c, Scratch<float>& s, std::int64_t task) { forward_block(c, s, task); }
void forward_bf16(const Ctx<std::uint16_t>& c, Scratch<std::uint16_t>& s, std::int64_t task) {
  forward_block(c, s, task);
}
void backward_f32(const Ctx<float>& c, Scratch<float>& s, std::int64_t bh) { backward_head(c, s, bh); }
void backward_bf16(const Ctx<std::uint16_t>& c, Scratch<std::uint16_t>& s, std::int64_t bh) {
  backward_head(c, s, bh);
}
