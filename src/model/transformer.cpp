#include "model/transformer.h"

#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/functions/utils.h>

#include <cmath>
#include <cstdlib>

#include "comm/communicator.h"
#include "core/error.h"
#include "core/random.h"
#include "model/block_shards.h"
#include "model/softmax_kernels.h"

namespace sparc {
namespace {

std::string shape_str(c10::IntArrayRef s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Reductions (norms, softmax) and RoPE angles run in float32 at least, also
// when activations are bf16; a float64 model (used by gradient checks) stays float64.
torch::ScalarType compute_type(const torch::Tensor& x) {
  return torch::promote_types(x.scalar_type(), torch::kFloat32);
}

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

// grad [B*H, rows, keys] of the probabilities p (same shape and dtype, both
// fused_softmax) <- the gradient of the scaled scores, in place.
void softmax_backward_(torch::Tensor& grad, const torch::Tensor& p, double scale) {
  const auto rows = grad.size(0) * grad.size(1), n = grad.size(2);
  if (grad.scalar_type() == torch::kBFloat16)
    kernels::softmax_backward_rows(reinterpret_cast<std::uint16_t*>(grad.data_ptr()),
                                   reinterpret_cast<const std::uint16_t*>(p.data_ptr()), rows, n,
                                   float(scale));
  else
    kernels::softmax_backward_rows(grad.data_ptr<float>(), p.data_ptr<float>(), rows, n,
                                   float(scale));
}

// Attention softmax(q k^T * scale, masked) v over q, k, v [B, H, S, hd], with
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
// bfloat16 keeps bfloat16 probabilities); elsewhere LibTorch's operators in
// the compute type.
constexpr std::int64_t kQueryChunk = 128;

struct AttentionFn : public torch::autograd::Function<AttentionFn> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& q,
                               const torch::Tensor& k, const torch::Tensor& v,
                               const torch::Tensor& blocked, double scale) {
    const auto B = q.size(0), H = q.size(1), S = q.size(2), hd = q.size(3), Sk = k.size(2);
    auto q3 = q.reshape({B * H, S, hd}).contiguous();
    auto k3 = k.reshape({B * H, Sk, hd}).contiguous();
    auto v3 = v.reshape({B * H, Sk, hd}).contiguous();
    auto kt = k3.transpose(1, 2).contiguous();  // [BH, hd, Sk]
    const std::int64_t chunks = S == Sk ? std::max<std::int64_t>(1, (S + kQueryChunk / 2) / kQueryChunk) : 1;
    std::vector<torch::Tensor> saved{q3, k3, v3}, outs;
    std::vector<std::int64_t> bounds{0};
    for (std::int64_t c = 1; c <= chunks; ++c) bounds.push_back(S * c / chunks);
    for (std::int64_t c = 0; c < chunks; ++c) {
      const auto r0 = bounds[c], rows = bounds[c + 1] - r0;
      const auto keys = chunks == 1 ? Sk : bounds[c + 1];
      auto scores = torch::bmm(q3.narrow(1, r0, rows), kt.narrow(2, 0, keys));
      const auto chunk_blocked = blocked.narrow(2, r0, rows).narrow(3, 0, keys);
      torch::Tensor probs, p;  // in the compute type, and in q's dtype for P V
      if (fused_softmax(scores)) {
        masked_softmax_(scores, chunk_blocked, H, scale);  // in place, in scores' dtype
        probs = p = scores;
      } else {
        scores = scores.to(compute_type(scores));
        if (scale != 1.0) scores.mul_(scale);
        scores.view({B, H, rows, keys})
            .masked_fill_(chunk_blocked, -std::numeric_limits<double>::infinity());
        probs = torch::softmax(scores, -1);
        p = probs.to(q.scalar_type());  // the same tensor in f32
      }
      outs.push_back(torch::bmm(p, v3.narrow(1, 0, keys)));
      saved.push_back(probs);
      saved.push_back(p);  // kept, not converted again in backward
    }
    ctx->save_for_backward(saved);
    ctx->saved_data["scale"] = scale;
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
      if (fused_softmax(dp) && fused_softmax(p)) {
        softmax_backward_(dp, p, scale);
        ds = dp;
      } else {
        dp = dp.to(probs.scalar_type());
        ds = torch::_softmax_backward_data(dp, probs, -1, probs.scalar_type());
        if (scale != 1.0) ds.mul_(scale);
        ds = ds.to(dtype);
      }
      dqs.push_back(torch::bmm(ds, k3.narrow(1, 0, keys)));
      dk.narrow(1, 0, keys).baddbmm_(ds.transpose(1, 2), q3.narrow(1, r0, rows));
    }
    auto dq = chunks == 1 ? dqs[0] : torch::cat(dqs, 1);
    const auto shape = grads[0].sizes();
    return {dq.view(shape), dk.view({shape[0], shape[1], Sk, hd}).to(k_dtype),
            dv.view({shape[0], shape[1], Sk, hd}).to(v_dtype), torch::Tensor(), torch::Tensor()};
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

torch::Dtype parse_model_dtype(const std::string& name, const std::string& where) {
  if (name == "f32" || name == "float32") return torch::kFloat32;
  if (name == "bf16" || name == "bfloat16") return torch::kBFloat16;
  if (name == "f16" || name == "float16") return torch::kFloat16;
  throw InputError(where, "unknown dtype '" + name + "', expected f32, bf16 or f16");
}

torch::Device parse_model_device(const std::string& name, const std::string& where) {
  if (name == "cpu") return torch::kCPU;
  if (name.rfind("cuda", 0) == 0) {
    if (!torch::cuda::is_available())
      throw InputError(where, "device '" + name + "' requested but CUDA is not available " +
                                  "in this build or on this machine");
    return torch::Device(name);
  }
  throw InputError(where, "unknown device '" + name + "', expected cpu, cuda or cuda:N");
}

torch::Tensor Linear::forward(const torch::Tensor& x, const DropoutKeys* dropout) const {
  torch::Tensor y;
  const auto t = weight.scalar_type();
  if ((t == torch::kBFloat16 || t == torch::kFloat16) && !weight.requires_grad() &&
      x.scalar_type() == t) {
    // The transpose is cached per weight tensor and version (an in-place
    // update, as a restored `full` checkpoint makes, invalidates it).
    if (!weight_t.defined() || weight_t_of != weight.unsafeGetTensorImpl() ||
        weight_t_version != weight._version()) {
      torch::NoGradGuard no_grad;
      weight_t = weight.t().contiguous();
      weight_t_of = weight.unsafeGetTensorImpl();
      weight_t_version = weight._version();
    }
    y = FrozenLinearFn::apply(x, weight, weight_t);
    if (bias.defined()) y = y + bias;
  } else {
    y = torch::linear(x, weight, bias.defined() ? bias : torch::Tensor());
  }
  if (!lora) return y;
  auto h = x.to(lora->a.scalar_type());
  if (dropout != nullptr && lora->dropout > 0) {
    // One generator per batch row, keyed by the row's global sample index.
    const double keep = 1.0 - lora->dropout;
    TORCH_CHECK(std::int64_t(dropout->sample_ids.size()) == h.size(0),
                "dropout keys for ", dropout->sample_ids.size(), " samples, batch has ", h.size(0));
    std::vector<torch::Tensor> masks;
    for (auto id : dropout->sample_ids) {
      auto gen = at::detail::createCPUGenerator(
          random_key({dropout->base, module_id, std::uint64_t(id)}));
      masks.push_back(at::bernoulli(torch::full(h.sizes().slice(1), keep), gen));
    }
    h = h * (torch::stack(masks).to(h.device(), h.scalar_type()) / keep);
  }
  auto delta = torch::linear(torch::linear(h, lora->a), lora->b) * lora->scale;
  return y + delta.to(y.scalar_type());
}

Transformer::Transformer(const WeightSource& source, const ModelOptions& options)
    : config_(source.config()), options_(options) {
  config_.validate(source.describe());
  torch::NoGradGuard no_grad;
  const bool shard = options_.shard_comm != nullptr && options_.shard_comm->size() > 1;
  if (shard)
    shards_ = std::make_shared<BlockShards>(*options_.shard_comm, options_.dtype, options_.device);
  std::map<std::string, torch::Tensor> loaded;
  std::vector<std::pair<std::string, std::vector<std::int64_t>>> block;  // one block's, sharded
  std::int64_t block_layer = -1;
  for (const auto& [name, shape] : expected_tensors(config_)) {
    const std::string stored = source.stored_name(name);
    if (!source.has(name))
      throw InputError(source.describe(), "missing tensor '" + stored + "' (expected shape " +
                                              shape_str(shape) + ")");
    const auto meta = source.meta(name);
    if (c10::IntArrayRef(meta.shape) != c10::IntArrayRef(shape))
      throw InputError(source.describe(), "tensor '" + stored + "' has shape " +
                                              shape_str(meta.shape) + ", expected " +
                                              shape_str(shape));
    if (!meta.floating)
      throw InputError(source.describe(), "tensor '" + stored + "' is not floating point");
    std::int64_t numel = 1;
    for (auto d : shape) numel *= d;
    parameter_count_ += numel;
    if (shard && name.rfind("layers.", 0) == 0) {
      const std::int64_t layer = std::stoll(name.substr(7));
      if (layer != block_layer && !block.empty()) shards_->add_block(source, block), block.clear();
      block_layer = layer;
      block.emplace_back(name, shape);
      continue;
    }
    loaded[name] = source.load(name).to(options_.device, options_.dtype).contiguous();
  }
  if (!block.empty()) shards_->add_block(source, block);
  auto take = [&](const std::string& n) -> torch::Tensor {
    auto it = loaded.find(n);
    return it == loaded.end() ? torch::Tensor() : it->second;
  };
  tok_embeddings_ = take("tok_embeddings");
  pos_embeddings_ = take("pos_embeddings");
  lm_head_ = config_.tie_embeddings ? tok_embeddings_ : take("lm_head.weight");
  final_norm_ = {take("norm.weight"), take("norm.bias")};
  const std::int64_t D = config_.dim, F = config_.ffn_dim;
  const std::int64_t Q = config_.q_dim(), KV = config_.kv_dim();
  for (std::int64_t l = 0; l < config_.n_layers; ++l) {
    const std::string p = "layers." + std::to_string(l) + ".";
    auto lin = [&](const std::string& n, std::int64_t out_features, std::int64_t in_features) {
      Linear out;
      out.weight = take(p + n + ".weight");
      out.bias = take(p + n + ".bias");
      out.in_features = in_features;
      out.out_features = out_features;
      out.module_id = random_key({std::uint64_t(l), std::hash<std::string>{}(n)});
      return out;
    };
    Block b;
    b.attn_norm = {take(p + "attn_norm.weight"), take(p + "attn_norm.bias")};
    b.mlp_norm = {take(p + "mlp_norm.weight"), take(p + "mlp_norm.bias")};
    b.q = lin("q", Q, D);
    b.k = lin("k", KV, D);
    b.v = lin("v", KV, D);
    b.o = lin("o", D, Q);
    b.gate = lin("gate", F, D);
    b.up = lin("up", F, D);
    b.down = lin("down", D, F);
    blocks_.push_back(std::move(b));
  }
}

torch::Tensor Transformer::embed(const torch::Tensor& tokens) const {
  auto ids = tokens.to(options_.device, torch::kLong);
  if (ids.numel() > 0) {
    auto lo = ids.min().item<std::int64_t>();
    auto hi = ids.max().item<std::int64_t>();
    if (lo < 0 || hi >= config_.vocab_size)
      throw InputError("tokens", "token id out of range [0, " +
                                     std::to_string(config_.vocab_size) + "): found " +
                                     std::to_string(lo < 0 ? lo : hi));
  }
  return torch::embedding(tok_embeddings_, ids);
}

torch::Tensor Transformer::norm(const Norm& n, const torch::Tensor& x) const {
  if (config_.arch == Arch::kGpt2)
    return torch::layer_norm(x, {config_.dim}, n.weight, n.bias, config_.norm_eps);
  // RMSNorm in at least float32, then back to the activation dtype (as Hugging Face does).
  if (!n.weight.requires_grad()) return RmsNormFn::apply(x, n.weight, config_.norm_eps);
  auto xf = x.to(compute_type(x));
  auto y = xf * torch::rsqrt(xf.pow(2).mean(-1, true) + config_.norm_eps);
  return y.to(x.scalar_type()) * n.weight;
}

torch::Tensor Transformer::run_block(const Block& b, const torch::Tensor& x, const Geometry& g,
                                     const DropoutKeys* dropout, const torch::Tensor& rows) const {
  const std::int64_t B = x.size(0), S = x.size(1);
  const std::int64_t H = config_.n_heads, KV = config_.n_kv_heads, hd = config_.head_dim;
  // With `rows`, only one query position per sequence goes on past the keys
  // and values: the rest of the block's work is not needed.
  const bool sel = rows.defined();
  const std::int64_t Sq = sel ? 1 : S;
  torch::Tensor at;  // [B, 1, 1, 1] positions, for gathering along dim 2
  if (sel) at = rows.view({B, 1, 1, 1});
  auto pick = [&](const torch::Tensor& t) {  // [B, S, D] -> [B, 1, D] at `rows`
    return t.gather(1, rows.view({B, 1, 1}).expand({B, 1, t.size(2)}));
  };
  auto h = norm(b.attn_norm, x);
  auto q = b.q.forward(sel ? pick(h) : h, dropout).view({B, Sq, H, hd}).transpose(1, 2);
  auto k = b.k.forward(h, dropout).view({B, S, KV, hd}).transpose(1, 2);
  auto v = b.v.forward(h, dropout).view({B, S, KV, hd}).transpose(1, 2);
  // Llama: the attention scale 1/sqrt(hd) is folded into the queries' RoPE
  // factors (a pass over q instead of one over the [S, S] scores).
  double scale = 1.0 / std::sqrt(double(hd));
  if (config_.arch == Arch::kLlama) {
    q = sel ? RopeFn::apply(q, g.q_cos.gather(2, at.expand({B, 1, 1, hd})),
                            g.q_sin.gather(2, at.expand({B, 1, 1, hd})))
            : RopeFn::apply(q, g.q_cos, g.q_sin);
    k = RopeFn::apply(k, g.cos, g.sin);
    scale = 1.0;
  }
  if (KV != H) {  // grouped-query attention: query head i reads key/value head i / (H / KV)
    k = k.repeat_interleave(H / KV, 1);
    v = v.repeat_interleave(H / KV, 1);
  }
  const auto blocked = sel ? g.blocked.gather(2, at.expand({B, 1, 1, S})) : g.blocked;
  auto attn = AttentionFn::apply(q, k, v, blocked, scale)
                  .transpose(1, 2)
                  .reshape({B, Sq, H * hd});
  auto x1 = (sel ? pick(x) : x) + b.o.forward(attn, dropout);
  auto m = norm(b.mlp_norm, x1);
  torch::Tensor mlp;
  if (config_.arch == Arch::kLlama)
    mlp = b.down.forward(torch::silu(b.gate.forward(m, dropout)) * b.up.forward(m, dropout), dropout);
  else
    mlp = b.down.forward(torch::gelu(b.up.forward(m, dropout), "tanh"), dropout);
  return x1 + mlp;
}

Transformer::Geometry Transformer::geometry(torch::Tensor& x, const torch::Tensor& valid_in) const {
  const std::int64_t B = x.size(0), S = x.size(1);
  auto dev = options_.device;
  torch::Tensor valid = valid_in.defined()
                            ? valid_in.to(dev).to(torch::kBool)
                            : torch::ones({B, S}, torch::dtype(torch::kBool).device(dev));
  // Positions count real tokens only, so padding never shifts them.
  auto pos = (valid.to(torch::kLong).cumsum(1) - 1).clamp_min(0);
  // A query attends to earlier real keys, and always to itself (so a padded
  // row has one finite score and no NaN appears).
  auto causal = torch::ones({S, S}, torch::dtype(torch::kBool).device(dev)).tril();
  auto self = torch::eye(S, torch::dtype(torch::kBool).device(dev));
  Geometry g;
  g.allowed = (causal & (valid.unsqueeze(1) | self)).unsqueeze(1);  // [B, 1, S, S]
  g.blocked = g.allowed.logical_not();
  if (config_.arch == Arch::kLlama) {
    const std::int64_t half = config_.head_dim / 2;
    auto j = torch::arange(half, torch::dtype(torch::kFloat64).device(dev));
    const auto ct = compute_type(x);
    auto inv_freq = torch::pow(config_.rope_theta, -2.0 * j / double(config_.head_dim)).to(ct);
    auto angles = pos.to(ct).unsqueeze(-1) * inv_freq;  // [B, S, hd/2]
    auto cos = angles.cos().unsqueeze(1), sin = angles.sin().unsqueeze(1);  // [B, 1, S, hd/2]
    auto cos2 = torch::cat({cos, cos}, -1), sin2 = torch::cat({-sin, sin}, -1);  // [B, 1, S, hd]
    const double scale = 1.0 / std::sqrt(double(config_.head_dim));
    g.cos = cos2.to(options_.dtype);
    g.sin = sin2.to(options_.dtype);
    g.q_cos = (cos2 * scale).to(options_.dtype);
    g.q_sin = (sin2 * scale).to(options_.dtype);
  } else {
    auto max_pos = pos.max().item<std::int64_t>();
    if (max_pos >= config_.max_seq_len)
      throw InputError("input", "sequence of " + std::to_string(max_pos + 1) +
                                    " positions exceeds the model's " +
                                    std::to_string(config_.max_seq_len) + " learned positions");
    x = x + torch::embedding(pos_embeddings_, pos);
  }
  return g;
}

torch::Tensor Transformer::hidden_states(const torch::Tensor& embeddings,
                                         const torch::Tensor& valid) const {
  auto x = embeddings.to(options_.device, options_.dtype);
  auto g = geometry(x, valid);
  const std::int64_t L = std::int64_t(blocks_.size());
  for (std::int64_t l = 0; l < L; ++l) x = call_block(l, l + 1 < L ? l + 1 : -1, x, g);
  return norm(final_norm_, x);
}

torch::Tensor Transformer::hidden_after(const torch::Tensor& embeddings,
                                        const torch::Tensor& valid, std::int64_t layers) const {
  if (layers < 0 || layers > config_.n_layers)
    throw InputError("pca.source", "hidden layer " + std::to_string(layers) +
                                       " out of range [0, " + std::to_string(config_.n_layers) +
                                       "]");
  auto x = embeddings.to(options_.device, options_.dtype);
  auto g = geometry(x, valid);
  for (std::int64_t l = 0; l < layers; ++l) x = call_block(l, l + 1 < layers ? l + 1 : -1, x, g);
  return x;
}

torch::Tensor Transformer::logits(const torch::Tensor& hidden) const {
  return torch::matmul(hidden, lm_head_.t()).to(compute_type(hidden));
}

torch::Tensor Transformer::prefixed_inputs(const torch::Tensor& tokens, const torch::Tensor& prefix,
                                           const torch::Tensor& attention_mask,
                                           torch::Tensor& valid) const {
  TORCH_CHECK(tokens.dim() == 2, "tokens must be [batch, length]");
  const std::int64_t B = tokens.size(0);
  auto x = embed(tokens);
  if (attention_mask.defined()) valid = attention_mask.to(options_.device).ne(0);
  if (prefix.defined()) {
    auto p = prefix.to(options_.device, options_.dtype);
    if (p.dim() == 2) p = p.unsqueeze(0).expand({B, p.size(0), p.size(1)});
    TORCH_CHECK(p.dim() == 3 && p.size(0) == B && p.size(2) == config_.dim,
                "prefix must be [P, D] or [batch, P, D]");
    x = torch::cat({p, x}, 1);
    if (valid.defined())
      valid = torch::cat({torch::ones({B, p.size(1)}, valid.options()), valid}, 1);
  }
  return x;
}

torch::Tensor Transformer::prefixed_hidden_states(const torch::Tensor& tokens,
                                                  const torch::Tensor& prefix,
                                                  const torch::Tensor& attention_mask) const {
  torch::Tensor valid;
  auto x = prefixed_inputs(tokens, prefix, attention_mask, valid);
  return hidden_states(x, valid);
}

torch::Tensor Transformer::prefixed_hidden_at(const torch::Tensor& tokens,
                                              const torch::Tensor& prefix,
                                              const torch::Tensor& attention_mask,
                                              const torch::Tensor& positions) const {
  torch::Tensor valid;
  auto x = prefixed_inputs(tokens, prefix, attention_mask, valid).to(options_.dtype);
  const std::int64_t B = x.size(0), L = std::int64_t(blocks_.size());
  auto rows = positions.to(options_.device, torch::kLong);
  TORCH_CHECK(rows.dim() == 1 && rows.size(0) == B, "positions must be [batch]");
  auto g = geometry(x, valid);
  // The last block runs its queries at `rows` only, unless it is sharded (its
  // recomputing backward runs whole blocks) or draws LoRA dropout (the masks
  // are drawn over every position).
  bool prune = options_.prune_last_block && !shards_ && L > 0;
  if (prune && dropout_ != nullptr) {
    const Block& last = blocks_.back();
    for (const Linear* lin : {&last.q, &last.k, &last.v, &last.o, &last.gate, &last.up, &last.down})
      if (lin->lora && lin->lora->dropout > 0) prune = false;
  }
  for (std::int64_t l = 0; l < L - (prune ? 1 : 0); ++l) x = call_block(l, l + 1 < L ? l + 1 : -1, x, g);
  if (prune) {
    // One sequence at a time: the products' shapes, and so BLAS's choice of
    // kernel and its rounding, then do not depend on how many sequences a
    // rank holds (data parallel runs stay equal to a single process up to
    // the reduction order of the gradient sum).
    std::vector<torch::Tensor> out;
    for (std::int64_t b = 0; b < B; ++b) {
      auto one = [&](const torch::Tensor& t) { return t.defined() ? t.narrow(0, b, 1) : t; };
      const Geometry gb{one(g.cos), one(g.sin), one(g.q_cos), one(g.q_sin), one(g.allowed), one(g.blocked)};
      out.push_back(run_block(blocks_.back(), x.narrow(0, b, 1), gb, dropout_, rows.narrow(0, b, 1)));
    }
    x = torch::cat(out, 0).squeeze(1);
  } else
    x = x.gather(1, rows.view({B, 1, 1}).expand({B, 1, x.size(2)})).squeeze(1);
  return norm(final_norm_, x);
}

torch::Tensor Transformer::forward(const torch::Tensor& tokens, const torch::Tensor& prefix,
                                   const torch::Tensor& attention_mask) const {
  return logits(prefixed_hidden_states(tokens, prefix, attention_mask));
}

std::vector<std::pair<std::string, torch::Tensor>> Transformer::named_weights() const {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  auto add = [&](const std::string& n, const torch::Tensor& t) {
    if (t.defined()) out.emplace_back(n, t);
  };
  add("tok_embeddings", tok_embeddings_);
  add("pos_embeddings", pos_embeddings_);
  for (size_t l = 0; l < blocks_.size(); ++l) {
    const auto& b = blocks_[l];
    const std::string p = "layers." + std::to_string(l) + ".";
    add(p + "attn_norm.weight", b.attn_norm.weight);
    add(p + "attn_norm.bias", b.attn_norm.bias);
    const std::pair<const char*, const Linear*> lins[] = {
        {"q", &b.q}, {"k", &b.k}, {"v", &b.v}, {"o", &b.o},
        {"gate", &b.gate}, {"up", &b.up}, {"down", &b.down}};
    for (const auto& [n, lin] : lins) {
      add(p + n + ".weight", lin->weight);
      add(p + n + ".bias", lin->bias);
    }
    add(p + "mlp_norm.weight", b.mlp_norm.weight);
    add(p + "mlp_norm.bias", b.mlp_norm.bias);
  }
  add("norm.weight", final_norm_.weight);
  add("norm.bias", final_norm_.bias);
  if (!config_.tie_embeddings) add("lm_head.weight", lm_head_);
  return out;
}

void Transformer::set_weights_trainable(bool trainable) {
  for (auto& [name, t] : named_weights()) {
    auto tensor = t;  // shares storage and autograd meta with the member
    tensor.requires_grad_(trainable);
  }
}

std::int64_t Transformer::parameter_count() const { return parameter_count_; }

// ---- layer sharding ------------------------------------------------------------

Block Transformer::full_block(std::int64_t l, std::int64_t next) const {
  Block b = blocks_[size_t(l)];
  if (!shards_) return b;
  auto w = shards_->gather(l, next);
  const std::string p = "layers." + std::to_string(l) + ".";
  auto get = [&](const std::string& n) {
    auto it = w.find(p + n);
    return it == w.end() ? torch::Tensor() : it->second;
  };
  b.attn_norm = {get("attn_norm.weight"), get("attn_norm.bias")};
  b.mlp_norm = {get("mlp_norm.weight"), get("mlp_norm.bias")};
  const std::pair<const char*, Linear*> lins[] = {{"q", &b.q},       {"k", &b.k},   {"v", &b.v},
                                                  {"o", &b.o},       {"gate", &b.gate},
                                                  {"up", &b.up},     {"down", &b.down}};
  for (const auto& [n, lin] : lins) {
    lin->weight = get(std::string(n) + ".weight");
    lin->bias = get(std::string(n) + ".bias");
  }
  return b;
}

// Backward of one sharded block: gathers the block again (issuing the gather
// of the block below, which backward reaches next), recomputes it from the
// saved input with the same dropout draws, and returns the gradients of the
// input and of the block's trainable adapters. Only the input is saved.
struct ShardedBlockBackward : public torch::autograd::Node {
  const Transformer* model = nullptr;
  std::int64_t layer = 0;
  Transformer::Geometry geometry;
  bool has_dropout = false;
  DropoutKeys dropout;
  torch::Tensor input;  // detached
  bool input_requires_grad = false;
  std::vector<torch::Tensor> params;  // the block's trainable adapter tensors

  torch::autograd::variable_list apply(torch::autograd::variable_list&& grads) override {
    Block b = model->full_block(layer, layer - 1);
    torch::autograd::variable_list out(1 + params.size());
    if (!grads[0].defined()) return out;
    torch::AutoGradMode enable(true);
    auto x = input.detach().requires_grad_(input_requires_grad);
    auto y = model->run_block(b, x, geometry, has_dropout ? &dropout : nullptr);
    std::vector<torch::Tensor> wrt;
    std::vector<size_t> slot;
    if (input_requires_grad) wrt.push_back(x), slot.push_back(0);
    for (size_t i = 0; i < params.size(); ++i) wrt.push_back(params[i]), slot.push_back(i + 1);
    auto g = torch::autograd::grad({y}, wrt, {grads[0]}, /*retain_graph=*/false,
                                   /*create_graph=*/false, /*allow_unused=*/true);
    for (size_t i = 0; i < g.size(); ++i) out[slot[i]] = g[i];
    return out;
  }
  void release_variables() override {
    input.reset();
    geometry = {};
  }
};

torch::Tensor Transformer::call_block(std::int64_t l, std::int64_t next, const torch::Tensor& x,
                                      const Geometry& g) const {
  if (!shards_) return run_block(blocks_[size_t(l)], x, g, dropout_);
  std::vector<torch::Tensor> params;
  const Block& meta = blocks_[size_t(l)];
  for (const Linear* lin : {&meta.q, &meta.k, &meta.v, &meta.o, &meta.gate, &meta.up, &meta.down})
    if (lin->lora)
      for (const auto& t : {lin->lora->a, lin->lora->b})
        if (t.requires_grad()) params.push_back(t);
  const bool graph = torch::GradMode::is_enabled() && (x.requires_grad() || !params.empty());
  torch::Tensor y;
  {
    torch::NoGradGuard no_grad;  // the graph of a sharded block is its recomputing node
    y = run_block(full_block(l, next), x, g, dropout_);
  }
  if (!graph) return y;
  auto node = std::shared_ptr<ShardedBlockBackward>(new ShardedBlockBackward(),
                                                    torch::autograd::deleteNode);
  node->model = this;
  node->layer = l;
  node->geometry = g;
  node->has_dropout = dropout_ != nullptr;
  if (dropout_) node->dropout = *dropout_;
  node->input = x.detach();
  node->input_requires_grad = x.requires_grad();
  node->params = params;
  std::vector<torch::Tensor> inputs{x};
  inputs.insert(inputs.end(), params.begin(), params.end());
  node->set_next_edges(torch::autograd::collect_next_edges(inputs));
  torch::autograd::create_gradient_edge(y, node);
  return y;
}

void Transformer::idle_pass(std::int64_t layers, bool backward) const {
  if (!shards_) return;
  for (std::int64_t l = 0; l < layers; ++l) shards_->gather(l, l + 1 < layers ? l + 1 : -1);
  if (backward)
    for (std::int64_t l = layers - 1; l >= 0; --l) shards_->gather(l, l - 1);
}

std::int64_t Transformer::resident_block_bytes() const {
  if (shards_) return shards_->resident_bytes();
  std::int64_t bytes = 0;
  for (const auto& [name, t] : named_weights())
    if (name.rfind("layers.", 0) == 0) bytes += t.numel() * t.element_size();
  return bytes;
}

}  // namespace sparc
