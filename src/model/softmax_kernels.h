// Attention's softmax passes over one row of scores, fused: each reads its
// inputs once and writes once, computing in float32 whatever the storage
// (float32, or bfloat16 as raw bits). LibTorch 1.13's CPU operators take
// five passes for the same forward (widen, mask, softmax, narrow) and three
// for the backward, each over the whole [heads, rows, keys] block.
//
// Torch-free, so that tests can hold them against a naive reference. Built
// for AVX-512, AVX2 and baseline x86-64, chosen at run time.
#pragma once

#include <cstdint>

namespace sparc::kernels {

// Floats of scratch a row of n keys needs: n rounded up to the vector width.
std::int64_t softmax_scratch(std::int64_t n);

// x[j] <- exp(s x[j] - m) / sum over unmasked j of exp(s x[j] - m), and 0
// where blocked[j] != 0 (m: the largest unmasked s x[j]). A row with every
// key blocked becomes all zeros; results below float32's normal range
// become 0. `tmp` holds softmax_scratch(n) floats.
void masked_softmax_row(float* x, const std::uint8_t* blocked, std::int64_t n, float scale,
                        float* tmp);
void masked_softmax_row(std::uint16_t* x_bf16, const std::uint8_t* blocked, std::int64_t n,
                        float scale, float* tmp);

// The gradient of the scores given that of the probabilities p, in place:
// g[j] <- s p[j] (g[j] - sum_i p[i] g[i]) (subnormal results become 0).
void softmax_backward_row(float* g, const float* p, std::int64_t n, float scale);
void softmax_backward_row(std::uint16_t* g_bf16, const std::uint16_t* p_bf16, std::int64_t n,
                          float scale);

// Where row i of a [B * H * rows, n] block of scores finds its mask row:
// base + (i / rows / heads) * batch_stride + (i % rows) * row_stride
// (batch_stride 0 when one mask serves the whole batch).
struct MaskLayout {
  const std::uint8_t* base;
  std::int64_t rows, heads, batch_stride, row_stride;
};

// The row functions above over `count` contiguous rows of n, on OpenMP
// threads (as many as LibTorch's intra-op setting, one when the block is small).
void masked_softmax_rows(float* x, std::int64_t count, std::int64_t n, const MaskLayout& mask,
                         float scale);
void masked_softmax_rows(std::uint16_t* x_bf16, std::int64_t count, std::int64_t n,
                         const MaskLayout& mask, float scale);
void softmax_backward_rows(float* g, const float* p, std::int64_t count, std::int64_t n,
                           float scale);
void softmax_backward_rows(std::uint16_t* g_bf16, const std::uint16_t* p_bf16,
                           std::int64_t count, std::int64_t n, float scale);

// Soft-capped (Gemma 2): the scores are c tanh(s x[j] / c) before the
// softmax; th[j] gets tanh(s x[j] / c) (0 where blocked). The backward takes
// th and also multiplies by its derivative: g[j] <- s p[j] (g[j] - sum_i
// p[i] g[i]) (1 - th[j]^2). th is float32 whatever the storage.
void capped_softmax_row(float* x, const std::uint8_t* blocked, std::int64_t n, float scale,
                        float cap, float* th, float* tmp);
void capped_softmax_row(std::uint16_t* x_bf16, const std::uint8_t* blocked, std::int64_t n,
                        float scale, float cap, float* th, float* tmp);
void capped_softmax_backward_row(float* g, const float* p, const float* th, std::int64_t n,
                                 float scale);
void capped_softmax_backward_row(std::uint16_t* g_bf16, const std::uint16_t* p_bf16,
                                 const float* th, std::int64_t n, float scale);
// The same over `count` rows (th: count x n), as the blocks above.
void capped_softmax_rows(float* x, std::int64_t count, std::int64_t n, const MaskLayout& mask,
                         float scale, float cap, float* th);
void capped_softmax_rows(std::uint16_t* x_bf16, std::int64_t count, std::int64_t n,
                         const MaskLayout& mask, float scale, float cap, float* th);
void capped_softmax_backward_rows(float* g, const float* p, const float* th, std::int64_t count,
                                  std::int64_t n, float scale);
void capped_softmax_backward_rows(std::uint16_t* g_bf16, const std::uint16_t* p_bf16,
                                  const float* th, std::int64_t count, std::int64_t n, float scale);

// exp(x) for x <= 88, to within 2 ulp; x below about -87.3 gives 0. Exposed for tests.
void exp_inplace(float* x, std::int64_t n);

// bfloat16 bits <-> float32, rounding to nearest even (NaN stays NaN).
float bf16_to_float(std::uint16_t b);
std::uint16_t float_to_bf16(float f);

}  // namespace sparc::kernels
