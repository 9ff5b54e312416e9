// The transformer's custom autograd operators: fewer passes over the
// activations, and products laid out the way CPU BLAS runs fast, each with
// its backward (model/transformer_internal.h declares their entry points).
#include <torch/torch.h>

#include <algorithm>
#include <cstdlib>
#include <limits>
#include <string>
#include <vector>

#include "model/flash_attention.h"
#include "model/softmax_kernels.h"
#include "model/swiglu_kernels.h"
#include "model/transformer_internal.h"

namespace sparc::model_detail {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// RMSNorm with a frozen weight, as Hugging Face computes it (in float32 at
// least, cast back to the activation dtype, times the weight) in fewer
// passes over the activations than autograd's chain of eight operators:
// forward: cast, squared norm, scale-and-cast, weight; backward (the weight
// gets no gradient): dx = r g' - r^3 x mean(g' x), g' = g w, r = rsqrt(mean(x^2) + eps).
struct RmsNormFn : public torch::autograd::Function<RmsNormFn> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& weight, double eps) {
    const auto ct = compute_type(x);
    auto xf = x.to(ct);
    const double d = double(x.size(-1));
    auto rstd = torch::rsqrt(torch::linalg_vector_norm(xf, 2, {-1}, true, ct).square_().div_(d).add_(eps));
    auto y = torch::empty(x.sizes(), x.options());
    torch::mul_out(y, xf, rstd);  // rounded once into the activation dtype
    ctx->save_for_backward({x, rstd, weight});
    return y.mul_(weight);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const auto& x = saved[0];
    const auto& rstd = saved[1];
    const auto& weight = saved[2];
    const auto ct = compute_type(x);
    auto xf = x.to(ct);
    auto gw = (grads[0] * weight).to(ct);
    auto c = (gw * xf).sum(-1, true).div_(double(x.size(-1))).mul_(rstd.pow(3));
    // xf may be x itself (no cast for f32/f64 activations): never written to.
    auto dx = gw.mul_(rstd).addcmul_(xf, c, -1);
    return {dx.to(x.scalar_type()), torch::Tensor(), torch::Tensor()};
  }
};

// The halves of each head swapped: (x1, x2) -> (x2, x1), as a new contiguous tensor.
torch::Tensor swap_halves(const torch::Tensor& x) {
  auto halves = x.chunk(2, -1);
  return torch::cat({halves[1], halves[0]}, -1);
}

// RoPE on the two halves of each head, (x1, x2) -> (x1 cos - x2 sin,
// x2 cos + x1 sin), written as x * cos2 + swap(x) * sin2 with cos2 = (cos,
// cos) and sin2 = (-sin, sin) over the whole head (Geometry holds both).
// Three passes over x instead of autograd's seven, and the output is a
// contiguous [B, H, S, hd] whatever x's strides (x is a transposed view of
// the projection), so attention needs no copy of it. Backward: the
// transpose of the same map, dx = g * cos2 + swap(g * sin2).
struct RopeFn : public torch::autograd::Function<RopeFn> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& cos2, const torch::Tensor& sin2) {
    // In the promoted dtype, as the plain formula would be (under autocast x
    // can be bf16 while the factors are f32).
    const auto rt = torch::promote_types(x.scalar_type(), cos2.scalar_type());
    const auto c = cos2.to(rt), s = sin2.to(rt);
    ctx->saved_data["cos2"] = c;
    ctx->saved_data["sin2"] = s;
    ctx->saved_data["x_dtype"] = int64_t(x.scalar_type());
    auto out = torch::empty(x.sizes(), x.options().dtype(rt).memory_format(at::MemoryFormat::Contiguous));
    torch::mul_out(out, x, c);
    return out.addcmul_(swap_halves(x).to(rt), s);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto cos2 = ctx->saved_data["cos2"].toTensor();
    const auto sin2 = ctx->saved_data["sin2"].toTensor();
    const auto x_dtype = static_cast<torch::ScalarType>(ctx->saved_data["x_dtype"].toInt());
    const auto g = grads[0].to(cos2.scalar_type());
    return {swap_halves(g * sin2).addcmul_(g, cos2).to(x_dtype), torch::Tensor(), torch::Tensor()};
  }
};

// Whether the fused CPU softmax kernels take these scores.
// SPARC_FUSED_SOFTMAX=0 keeps LibTorch's operators instead (for A/B benchmarks).
bool fused_softmax(const torch::Tensor& scores) {
  static const bool enabled = [] {
    const char* env = std::getenv("SPARC_FUSED_SOFTMAX");
    return !(env && std::string(env) == "0");
  }();
  return enabled && scores.device().is_cpu() && scores.is_contiguous() &&
         (scores.scalar_type() == torch::kFloat32 || scores.scalar_type() == torch::kBFloat16);
}

// scores [B*H, rows, keys] (fused_softmax) <- masked softmax(scale * scores)
// over keys, in place; blocked [B or 1, 1, rows, keys].
void masked_softmax_(torch::Tensor& scores, const torch::Tensor& blocked, std::int64_t heads,
                     double scale) {
  TORCH_CHECK(blocked.size(1) == 1, "attention mask: one mask for all heads expected");
  const auto mask = blocked.stride(3) == 1 ? blocked : blocked.contiguous();
  const kernels::MaskLayout layout{reinterpret_cast<const std::uint8_t*>(mask.data_ptr<bool>()),
                                   scores.size(1), heads, mask.size(0) == 1 ? 0 : mask.stride(0),
                                   mask.stride(2)};
  if (scores.scalar_type() == torch::kBFloat16)
    kernels::masked_softmax_rows(reinterpret_cast<std::uint16_t*>(scores.data_ptr()),
                                 scores.size(0) * scores.size(1), scores.size(2), layout, float(scale));
  else
    kernels::masked_softmax_rows(scores.data_ptr<float>(), scores.size(0) * scores.size(1),
                                 scores.size(2), layout, float(scale));
}

// The same with soft-capping (Gemma 2): th [B*H, rows, keys] (float32) gets
// tanh(scale * scores / cap).
void capped_softmax_(torch::Tensor& scores, const torch::Tensor& blocked, std::int64_t heads,
                     double scale, double cap, torch::Tensor& th) {
  const auto mask = blocked.stride(3) == 1 ? blocked : blocked.contiguous();
  const kernels::MaskLayout layout{reinterpret_cast<const std::uint8_t*>(mask.data_ptr<bool>()),
                                   scores.size(1), heads, mask.size(0) == 1 ? 0 : mask.stride(0),
                                   mask.stride(2)};
  const auto count = scores.size(0) * scores.size(1), n = scores.size(2);
  if (scores.scalar_type() == torch::kBFloat16)
    kernels::capped_softmax_rows(reinterpret_cast<std::uint16_t*>(scores.data_ptr()), count, n,
                                 layout, float(scale), float(cap), th.data_ptr<float>());
  else
    kernels::capped_softmax_rows(scores.data_ptr<float>(), count, n, layout, float(scale),
                                 float(cap), th.data_ptr<float>());
}

// grad [B*H, rows, keys] of the probabilities p (same shape and dtype, both
// fused_softmax) <- the gradient of the scaled scores, in place.
void softmax_backward_(torch::Tensor& grad, const torch::Tensor& p, double scale,
                       const torch::Tensor& th = {}) {
  const auto rows = grad.size(0) * grad.size(1), n = grad.size(2);
  if (th.defined()) {  // soft-capped
    if (grad.scalar_type() == torch::kBFloat16)
      kernels::capped_softmax_backward_rows(reinterpret_cast<std::uint16_t*>(grad.data_ptr()),
                                            reinterpret_cast<const std::uint16_t*>(p.data_ptr()),
                                            th.data_ptr<float>(), rows, n, float(scale));
    else
      kernels::capped_softmax_backward_rows(grad.data_ptr<float>(), p.data_ptr<float>(),
                                            th.data_ptr<float>(), rows, n, float(scale));
    return;
  }
  if (grad.scalar_type() == torch::kBFloat16)
    kernels::softmax_backward_rows(reinterpret_cast<std::uint16_t*>(grad.data_ptr()),
                                   reinterpret_cast<const std::uint16_t*>(p.data_ptr()), rows, n,
                                   float(scale));
  else
    kernels::softmax_backward_rows(grad.data_ptr<float>(), p.data_ptr<float>(), rows, n,
                                   float(scale));
}

// Attention where the flash kernels do not run (float64 models for gradient
// checks, CUDA, mixed dtypes under autocast, SPARC_FLASH_ATTENTION=0):
// softmax(q k^T * scale, masked) v over q, k, v [B, H, S, hd], with
// every batched product laid out the way CPU BLAS runs fast: its second
// operand contiguous, never a transposed view (LibTorch 1.13's bmm is several
// times slower on a transposed second operand, which autograd's matmul
// backward produces). Scores and softmax run in the compute type (f32 at
// least); `blocked` [B, 1, S, S] marks masked pairs, and is causal: when
// queries and keys are the same positions, the queries run in chunks of
// about kQueryChunk rows and each chunk only meets the keys up to its last
// row (the rest are masked anyway), which skips most of the masked half.
// Backward recomputes nothing: it keeps the probabilities. On the CPU in
// float32 and bfloat16, softmax and its backward are the fused row kernels
// of model/softmax_kernels.h (one pass each, in place, computed in float32;
// bfloat16 keeps bfloat16 probabilities; soft-capped ones keep tanh);
// elsewhere LibTorch's operators in the compute type.
constexpr std::int64_t kQueryChunk = 128;

struct AttentionFn : public torch::autograd::Function<AttentionFn> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& q,
                               const torch::Tensor& k, const torch::Tensor& v,
                               const torch::Tensor& blocked, double scale, double softcap) {
    const auto B = q.size(0), H = q.size(1), S = q.size(2), hd = q.size(3), Sk = k.size(2);
    auto q3 = q.reshape({B * H, S, hd}).contiguous();
    auto k3 = k.reshape({B * H, Sk, hd}).contiguous();
    auto v3 = v.reshape({B * H, Sk, hd}).contiguous();
    auto kt = k3.transpose(1, 2).contiguous();  // [BH, hd, Sk]
    const std::int64_t chunks = S == Sk ? std::max<std::int64_t>(1, (S + kQueryChunk / 2) / kQueryChunk) : 1;
    std::vector<torch::Tensor> saved{q3, k3, v3}, outs, tanhs;
    std::vector<std::int64_t> bounds{0};
    for (std::int64_t c = 1; c <= chunks; ++c) bounds.push_back(S * c / chunks);
    for (std::int64_t c = 0; c < chunks; ++c) {
      const auto r0 = bounds[c], rows = bounds[c + 1] - r0;
      const auto keys = chunks == 1 ? Sk : bounds[c + 1];
      auto scores = torch::bmm(q3.narrow(1, r0, rows), kt.narrow(2, 0, keys));
      const auto chunk_blocked = blocked.narrow(2, r0, rows).narrow(3, 0, keys);
      torch::Tensor probs, p;  // in the compute type, and in q's dtype for P V
      if (fused_softmax(scores)) {
        if (softcap > 0) {
          auto th = torch::empty(scores.sizes(), scores.options().dtype(torch::kFloat32));
          capped_softmax_(scores, chunk_blocked, H, scale, softcap, th);
          tanhs.push_back(th);
        } else {
          masked_softmax_(scores, chunk_blocked, H, scale);  // in place, in scores' dtype
        }
        probs = p = scores;
      } else {
        scores = scores.to(compute_type(scores));
        if (scale != 1.0) scores.mul_(scale);
        if (softcap > 0) {  // c tanh(s / c); tanh kept for the backward's 1 - tanh^2
          auto t = scores.div_(softcap).tanh_();
          tanhs.push_back(t.clone());
          scores = t.mul_(softcap);
        }
        scores.view({B, H, rows, keys})
            .masked_fill_(chunk_blocked, -std::numeric_limits<double>::infinity());
        probs = torch::softmax(scores, -1);
        p = probs.to(q.scalar_type());  // the same tensor in f32
      }
      outs.push_back(torch::bmm(p, v3.narrow(1, 0, keys)));
      saved.push_back(probs);
      saved.push_back(p);  // kept, not converted again in backward
    }
    saved.insert(saved.end(), tanhs.begin(), tanhs.end());
    ctx->save_for_backward(saved);
    ctx->saved_data["scale"] = scale;
    ctx->saved_data["softcap"] = softcap;
    ctx->saved_data["bounds"] = bounds;
    auto out = chunks == 1 ? outs[0] : torch::cat(outs, 1);
    return out.view({B, H, S, hd});
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    // Backward runs without autocast (its state is per thread): under CPU
    // autocast q, k, v and the gradient can differ in dtype, so all products
    // run in q's dtype and each gradient returns in its input's dtype.
    const auto& q3 = saved[0];
    const auto dtype = q3.scalar_type();
    const auto k3 = saved[1].to(dtype);
    const auto v3 = saved[2].to(dtype);
    const auto k_dtype = saved[1].scalar_type(), v_dtype = saved[2].scalar_type();
    const double scale = ctx->saved_data["scale"].toDouble();
    const bool capped = ctx->saved_data["softcap"].toDouble() > 0;
    const auto bounds = ctx->saved_data["bounds"].toIntVector();
    const auto chunks = std::int64_t(bounds.size()) - 1;
    const auto BH = q3.size(0), S = q3.size(1), hd = q3.size(2), Sk = k3.size(1);
    auto g = grads[0].reshape({BH, S, hd}).to(dtype).contiguous();
    auto vt = v3.transpose(1, 2).contiguous();  // [BH, hd, Sk]
    auto dk = torch::zeros_like(k3), dv = torch::zeros_like(v3);
    std::vector<torch::Tensor> dqs;
    for (std::int64_t c = 0; c < chunks; ++c) {
      const auto& probs = saved[3 + 2 * c];
      const auto p = saved[4 + 2 * c].to(dtype);  // autocast may have left it in another dtype
      const auto r0 = bounds[c], rows = bounds[c + 1] - r0;
      const auto keys = chunks == 1 ? Sk : bounds[c + 1];
      auto gc = g.narrow(1, r0, rows);
      dv.narrow(1, 0, keys).baddbmm_(p.transpose(1, 2), gc);
      auto dp = torch::bmm(gc, vt.narrow(2, 0, keys));
      // Softmax backward; masked pairs have p = 0, so their gradient is 0.
      torch::Tensor ds;
      const torch::Tensor th = capped ? saved[3 + 2 * chunks + c] : torch::Tensor();
      if (fused_softmax(dp) && fused_softmax(p) &&
          (!capped || (th.scalar_type() == torch::kFloat32 && th.is_contiguous()))) {
        softmax_backward_(dp, p, scale, th);
        ds = dp;
      } else {
        dp = dp.to(probs.scalar_type());
        ds = torch::_softmax_backward_data(dp, probs, -1, probs.scalar_type());
        if (capped) ds.mul_(1 - th * th);
        if (scale != 1.0) ds.mul_(scale);
        ds = ds.to(dtype);
      }
      dqs.push_back(torch::bmm(ds, k3.narrow(1, 0, keys)));
      dk.narrow(1, 0, keys).baddbmm_(ds.transpose(1, 2), q3.narrow(1, r0, rows));
    }
    auto dq = chunks == 1 ? dqs[0] : torch::cat(dqs, 1);
    const auto shape = grads[0].sizes();
    return {dq.view(shape), dk.view({shape[0], shape[1], Sk, hd}).to(k_dtype),
            dv.view({shape[0], shape[1], Sk, hd}).to(v_dtype), torch::Tensor(), torch::Tensor(),
            torch::Tensor()};
  }
};

// Whether the flash kernels (model/flash_attention.h) take this attention:
// on the CPU, q, k, v of one dtype, float32 or bfloat16.
// SPARC_FLASH_ATTENTION=0 keeps AttentionFn instead (for A/B benchmarks).
bool flash_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v) {
  static const bool enabled = [] {
    const char* env = std::getenv("SPARC_FLASH_ATTENTION");
    return !(env && std::string(env) == "0");
  }();
  const auto dt = q.scalar_type();
  return enabled && q.device().is_cpu() && k.device().is_cpu() && v.device().is_cpu() &&
         (dt == torch::kFloat32 || dt == torch::kBFloat16) && k.scalar_type() == dt &&
         v.scalar_type() == dt;
}

// The kernel's view of `blocked` [B or 1, 1, Sq, Sk]; `keep` holds the
// tensor it points into.
kernels::AttentionMask mask_view(const torch::Tensor& blocked, torch::Tensor& keep) {
  TORCH_CHECK(blocked.dim() == 4 && blocked.size(1) == 1 && blocked.scalar_type() == torch::kBool,
              "attention mask: [batch, 1, queries, keys] booleans expected");
  keep = blocked.stride(3) == 1 ? blocked : blocked.contiguous();
  return {reinterpret_cast<const std::uint8_t*>(keep.data_ptr<bool>()),
          keep.size(0) == 1 ? 0 : keep.stride(0), keep.stride(2)};
}

kernels::AttentionShape attention_shape(const torch::Tensor& q, const torch::Tensor& k) {
  return {q.size(0), q.size(1), k.size(1), q.size(2), k.size(2), q.size(3)};
}

// Attention by the flash kernels: k, v may have fewer heads than q
// (grouped-query attention). Keeps q, k, v, the output and each row's
// log-sum-exp; backward recomputes the probabilities block by block.
struct FlashAttentionFn : public torch::autograd::Function<FlashAttentionFn> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& q_in,
                               const torch::Tensor& k_in, const torch::Tensor& v_in,
                               const torch::Tensor& blocked, double scale, double softcap) {
    const auto q = q_in.contiguous(), k = k_in.contiguous(), v = v_in.contiguous();
    torch::Tensor mask;
    const auto view = mask_view(blocked, mask);
    const auto shape = attention_shape(q, k);
    auto out = torch::empty(q.sizes(), q.options());
    auto lse = torch::empty({q.size(0), q.size(1), q.size(2)}, q.options().dtype(torch::kFloat32));
    const kernels::FlashOptions o{float(scale), float(softcap)};
    if (q.scalar_type() == torch::kBFloat16)
      kernels::flash_attention_forward(
          reinterpret_cast<const std::uint16_t*>(q.data_ptr()),
          reinterpret_cast<const std::uint16_t*>(k.data_ptr()),
          reinterpret_cast<const std::uint16_t*>(v.data_ptr()), shape, view, o,
          reinterpret_cast<std::uint16_t*>(out.data_ptr()), lse.data_ptr<float>());
    else
      kernels::flash_attention_forward(q.data_ptr<float>(), k.data_ptr<float>(),
                                       v.data_ptr<float>(), shape, view, o,
                                       out.data_ptr<float>(), lse.data_ptr<float>());
    ctx->save_for_backward({q, k, v, out, lse, mask});
    ctx->saved_data["scale"] = scale;
    ctx->saved_data["softcap"] = softcap;
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto &q = saved[0], &k = saved[1], &v = saved[2], &out = saved[3], &lse = saved[4];
    torch::Tensor mask;
    const auto view = mask_view(saved[5], mask);
    const auto shape = attention_shape(q, k);
    const auto g = grads[0].to(q.scalar_type()).contiguous();
    auto dq = torch::empty_like(q), dk = torch::empty_like(k), dv = torch::empty_like(v);
    const kernels::FlashOptions o{float(ctx->saved_data["scale"].toDouble()),
                                  float(ctx->saved_data["softcap"].toDouble())};
    if (q.scalar_type() == torch::kBFloat16) {
      using U = std::uint16_t;
      kernels::flash_attention_backward(
          reinterpret_cast<const U*>(q.data_ptr()), reinterpret_cast<const U*>(k.data_ptr()),
          reinterpret_cast<const U*>(v.data_ptr()), reinterpret_cast<const U*>(out.data_ptr()),
          reinterpret_cast<const U*>(g.data_ptr()), lse.data_ptr<float>(), shape, view, o,
          reinterpret_cast<U*>(dq.data_ptr()), reinterpret_cast<U*>(dk.data_ptr()),
          reinterpret_cast<U*>(dv.data_ptr()));
    } else {
      kernels::flash_attention_backward(q.data_ptr<float>(), k.data_ptr<float>(),
                                        v.data_ptr<float>(), out.data_ptr<float>(),
                                        g.data_ptr<float>(), lse.data_ptr<float>(), shape, view,
                                        o, dq.data_ptr<float>(), dk.data_ptr<float>(),
                                        dv.data_ptr<float>());
    }
    return {dq, dk, dv, torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

// silu(gate) * up by model/swiglu_kernels.h: one pass forward, one
// backward, computed in float32 and rounded once; keeps gate and up.
struct SwiGluFn : public torch::autograd::Function<SwiGluFn> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& gate_in,
                               const torch::Tensor& up_in) {
    const auto gate = gate_in.contiguous(), up = up_in.contiguous();
    auto y = torch::empty(gate.sizes(), gate.options());
    if (gate.scalar_type() == torch::kBFloat16)
      kernels::swiglu_forward(reinterpret_cast<const std::uint16_t*>(gate.data_ptr()),
                              reinterpret_cast<const std::uint16_t*>(up.data_ptr()),
                              reinterpret_cast<std::uint16_t*>(y.data_ptr()), y.numel());
    else
      kernels::swiglu_forward(gate.data_ptr<float>(), up.data_ptr<float>(), y.data_ptr<float>(),
                              y.numel());
    ctx->save_for_backward({gate, up});
    return y;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto &gate = saved[0], &up = saved[1];
    const auto dy = grads[0].to(gate.scalar_type()).contiguous();
    auto dg = torch::empty_like(gate), du = torch::empty_like(up);
    if (gate.scalar_type() == torch::kBFloat16) {
      using U = std::uint16_t;
      kernels::swiglu_backward(reinterpret_cast<const U*>(gate.data_ptr()),
                               reinterpret_cast<const U*>(up.data_ptr()),
                               reinterpret_cast<const U*>(dy.data_ptr()),
                               reinterpret_cast<U*>(dg.data_ptr()), reinterpret_cast<U*>(du.data_ptr()),
                               gate.numel());
    } else {
      kernels::swiglu_backward(gate.data_ptr<float>(), up.data_ptr<float>(), dy.data_ptr<float>(),
                               dg.data_ptr<float>(), du.data_ptr<float>(), gate.numel());
    }
    return {dg, du};
  }
};

// y = x W^T for a frozen W with its transpose W^T kept contiguous: in bf16,
// LibTorch's linear (a transposed second operand) runs at less than half the
// speed of a plain product. Backward: dx = dy W, also a plain product; no
// weight gradient (W is frozen).
struct FrozenLinearFn : public torch::autograd::Function<FrozenLinearFn> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& weight, const torch::Tensor& weight_t) {
    ctx->saved_data["w"] = weight;
    auto sizes = x.sizes().vec();
    sizes.back() = weight.size(0);
    return torch::mm(x.reshape({-1, x.size(-1)}), weight_t).view(sizes);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto w = ctx->saved_data["w"].toTensor();
    auto g = grads[0];
    auto sizes = g.sizes().vec();
    sizes.back() = w.size(1);
    return {torch::mm(g.reshape({-1, g.size(-1)}), w).view(sizes), torch::Tensor(),
            torch::Tensor()};
  }
};

}  // namespace

torch::ScalarType compute_type(const torch::Tensor& x) {
  return torch::promote_types(x.scalar_type(), torch::kFloat32);
}

torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& weight, double eps) {
  return RmsNormFn::apply(x, weight, eps);
}

torch::Tensor rope(const torch::Tensor& x, const torch::Tensor& cos2, const torch::Tensor& sin2) {
  return RopeFn::apply(x, cos2, sin2);
}

torch::Tensor attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                        const torch::Tensor& blocked, double scale, double softcap) {
  if (flash_attention(q, k, v)) return FlashAttentionFn::apply(q, k, v, blocked, scale, softcap);
  const auto group = q.size(1) / k.size(1);  // query head i reads key/value head i / group
  if (group == 1) return AttentionFn::apply(q, k, v, blocked, scale, softcap);
  return AttentionFn::apply(q, k.repeat_interleave(group, 1), v.repeat_interleave(group, 1),
                            blocked, scale, softcap);
}

torch::Tensor swiglu(const torch::Tensor& gate, const torch::Tensor& up) {
  // SPARC_FUSED_SWIGLU=0 keeps LibTorch's operators (for A/B benchmarks).
  static const bool enabled = [] {
    const char* env = std::getenv("SPARC_FUSED_SWIGLU");
    return !(env && std::string(env) == "0");
  }();
  const auto dt = gate.scalar_type();
  if (enabled && gate.device().is_cpu() && up.device().is_cpu() && up.scalar_type() == dt &&
      (dt == torch::kFloat32 || dt == torch::kBFloat16) && gate.sizes() == up.sizes())
    return SwiGluFn::apply(gate, up);
  return torch::silu(gate) * up;
}

torch::Tensor frozen_linear(const torch::Tensor& x, const torch::Tensor& weight,
                            const torch::Tensor& weight_t) {
  return FrozenLinearFn::apply(x, weight, weight_t);
}

}  // namespace sparc::model_detail
