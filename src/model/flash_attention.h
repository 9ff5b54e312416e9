// Attention on the CPU without the score matrix in memory (flash-style):
// blocks of queries meet blocks of keys, the softmax runs online (a running
// row maximum and sum), the value product joins in the same pass, and key
// blocks the mask blocks entirely are skipped. Backward keeps only each
// row's log-sum-exp and recomputes the probabilities block by block.
//
// Storage float32 or bfloat16 (raw bits); everything computes in float32.
// bfloat16 products use AVX-512 BF16 dot products (vdpbf16ps) where the CPU
// has them, else float32 multiply-adds on the widened values; the
// instruction set is chosen at run time. Results do not depend on the
// thread count: each output element is reduced in one fixed order.
//
// Torch-free, so that tests can hold it against a naive reference.
#pragma once

#include <cstdint>

namespace sparc::kernels {

// q, out, dq: [batch, heads, q_len, head_dim]; k, v, dk, dv: [batch,
// kv_heads, k_len, head_dim], all contiguous; query head h reads key/value
// head h / (heads / kv_heads) (grouped-query attention).
struct AttentionShape {
  std::int64_t batch = 1, heads = 1, kv_heads = 1, q_len = 0, k_len = 0, head_dim = 0;
};

// Query row i of sequence b may not attend to key j where
// base[b * batch_stride + i * row_stride + j] != 0 (batch_stride 0: one mask
// for the batch). base null: nothing blocked. A row with every key blocked
// gets output 0 and gradient 0.
struct AttentionMask {
  const std::uint8_t* base = nullptr;
  std::int64_t batch_stride = 0, row_stride = 0;
};

// Instruction sets, widest last; kBest: the widest this CPU runs.
enum class FlashIsa { kBest = -1, kBaseline = 0, kAvx2 = 1, kAvx512 = 2, kAvx512Bf16 = 3 };

struct FlashOptions {
  float scale = 1.0f;   // scores are scale * q.k
  float softcap = 0.0f; // > 0: scores become softcap * tanh(scores / softcap) (Gemma 2)
  int threads = 0;      // OpenMP threads; 0: the current default (LibTorch's intra-op setting)
  FlashIsa isa = FlashIsa::kBest;  // tests pin the portable paths
};

// The instruction set kBest resolves to on this CPU.
FlashIsa flash_best_isa();

// out <- softmax(masked scores) v; lse [batch, heads, q_len] (float32) <-
// each row's log-sum-exp of its unmasked scores (+inf for a row with none).
void flash_attention_forward(const float* q, const float* k, const float* v,
                             const AttentionShape& shape, const AttentionMask& mask,
                             const FlashOptions& options, float* out, float* lse);
void flash_attention_forward(const std::uint16_t* q, const std::uint16_t* k,
                             const std::uint16_t* v, const AttentionShape& shape,
                             const AttentionMask& mask, const FlashOptions& options,
                             std::uint16_t* out, float* lse);

// The gradients of q, k, v given dout, from the forward's out and lse (the
// same shapes, mask and options). dk, dv sum over the query heads sharing them.
void flash_attention_backward(const float* q, const float* k, const float* v, const float* out,
                              const float* dout, const float* lse, const AttentionShape& shape,
                              const AttentionMask& mask, const FlashOptions& options, float* dq,
                              float* dk, float* dv);
void flash_attention_backward(const std::uint16_t* q, const std::uint16_t* k,
                              const std::uint16_t* v, const std::uint16_t* out,
                              const std::uint16_t* dout, const float* lse,
                              const AttentionShape& shape, const AttentionMask& mask,
                              const FlashOptions& options, std::uint16_t* dq, std::uint16_t* dk,
                              std::uint16_t* dv);

}  // namespace sparc::kernels
