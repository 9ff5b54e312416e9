// SwiGLU's elementwise step, silu(gate) * up, and its backward, each as
// one pass (LibTorch 1.13 takes two passes forward and three backward, each
// rounding to the activation dtype between them). Computes in float32
// whatever the storage (float32, or bfloat16 as raw bits); OpenMP threads
// split the elements, so results do not depend on the thread count.
// Torch-free, so that tests can hold it against a naive reference.
#pragma once

#include <cstdint>

namespace sparc::kernels {

// y = silu(g) u, silu(g) = g / (1 + exp(-g)).
void swiglu_forward(const float* g, const float* u, float* y, std::int64_t n);
void swiglu_forward(const std::uint16_t* g, const std::uint16_t* u, std::uint16_t* y,
                    std::int64_t n);

// dg = dy u silu'(g), silu'(g) = s (1 + g (1 - s)) with s = sigmoid(g);
// du = dy silu(g).
void swiglu_backward(const float* g, const float* u, const float* dy, float* dg, float* du,
                     std::int64_t n);
void swiglu_backward(const std::uint16_t* g, const std::uint16_t* u, const std::uint16_t* dy,
                     std::uint16_t* dg, std::uint16_t* du, std::int64_t n);

}  // namespace sparc::kernels
