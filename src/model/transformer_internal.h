// Internal to the transformer's source files (transformer*.cpp, linear.cpp):
// the custom autograd operators it runs, behind plain functions so that their
// autograd templates stay in model/transformer_ops.cpp. Not part of the API.
#pragma once

#include <torch/types.h>

namespace sparc::model_detail {

// Reductions (norms, softmax) and RoPE angles run in float32 at least, also
// when activations are bf16; a float64 model (used by gradient checks) stays float64.
torch::ScalarType compute_type(const torch::Tensor& x);

// RMSNorm of x [..., D] with a frozen weight [D] (no weight gradient), as
// Hugging Face computes it: in compute_type, cast back to x's dtype, times the weight.
torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& weight, double eps);

// RoPE over whole heads, x * cos2 + swap_halves(x) * sin2, with cos2 = (cos,
// cos) and sin2 = (-sin, sin); x [B, H, S, hd] -> a contiguous [B, H, S, hd].
torch::Tensor rope(const torch::Tensor& x, const torch::Tensor& cos2, const torch::Tensor& sin2);

// softmax(q k^T * scale, masked by `blocked` [B, 1, Sq, Sk]) v over q [B, H, Sq, hd]
// and k, v [B, KV, Sk, hd] (query head i reads key/value head i / (H / KV));
// causal when Sq == Sk. softcap > 0: the scaled scores pass through
// softcap * tanh(s / softcap) first (Gemma 2). On the CPU in float32 and
// bfloat16, the flash kernels of model/flash_attention.h.
torch::Tensor attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                        const torch::Tensor& blocked, double scale, double softcap = 0);

// silu(gate) * up (SwiGLU); on the CPU in float32 and bfloat16 one fused
// pass each way (model/swiglu_kernels.h), computed in float32.
torch::Tensor swiglu(const torch::Tensor& gate, const torch::Tensor& up);

// x W^T for a frozen W [out, in], given its contiguous transpose W^T (no weight gradient).
torch::Tensor frozen_linear(const torch::Tensor& x, const torch::Tensor& weight,
                            const torch::Tensor& weight_t);

}  // namespace sparc::model_detail
