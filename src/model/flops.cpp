#include "model/flops.h"

#include <algorithm>

namespace sparc {
namespace {

// One product [m, k] x [k, n]: `a_grad` / `b_grad` say whether each operand
// needs its gradient (an activation on the path to a trainable tensor, or a
// trainable weight).
void product(StepFlops& f, double m, double n, double k, bool a_grad, bool b_grad) {
  const double one = 2 * m * n * k;
  f.forward += one;
  f.backward += one * (double(a_grad) + double(b_grad));
}

}  // namespace

StepFlops training_step_flops(const ModelConfig& c, const StepShape& s) {
  StepFlops f;
  const MethodTraits& method = method_traits(s.method);
  const bool full = method.trains_weights;
  const bool lora = method.lora != LoraKind::kNone;
  const bool prompt = method.prompt != PromptKind::kNone && s.prompt_len > 0;
  const bool subspace = method.prompt == PromptKind::kSubspace;
  const double B = double(s.batch), S = double(s.positions), M = B * S;
  const double D = double(c.dim), F = double(c.ffn_dim), H = double(c.n_heads);
  const double hd = double(c.head_dim), Q = double(c.q_dim()), KV = double(c.kv_dim());
  auto adapted = [&](const std::string& name) {
    return lora && std::find(s.lora_targets.begin(), s.lora_targets.end(), name) !=
                       s.lora_targets.end();
  };
  // The prompt Z W: Z [P, k] trainable, W [k, D] frozen.
  if (subspace && s.prompt_len > 0)
    product(f, double(s.prompt_len) * double(s.prompt_products), D, double(s.pca_k), true, false);
  // Does the residual stream need its gradient? From the start when a prompt
  // (or every weight) trains; with LoRA alone, from the first adapter on.
  bool stream = prompt || full;
  // A projection x [M, in] -> [M, out] with its optional adapter x A^T B^T;
  // returns whether its output needs a gradient.
  auto linear = [&](const std::string& name, double in, double out, bool x_grad) {
    product(f, M, out, in, x_grad, full);
    if (!adapted(name)) return x_grad || full;
    const double r = double(s.lora_rank);
    product(f, M, r, in, x_grad, true);  // x A^T
    product(f, M, out, r, true, true);   // (x A^T) B^T: its input depends on A
    return true;
  };
  for (std::int64_t l = 0; l < c.n_layers; ++l) {
    const bool h = stream || full;  // the norm's output (its weight trains in `full`)
    const bool q = linear("q", D, Q, h), k = linear("k", D, KV, h), v = linear("v", D, KV, h);
    // Scores Q K^T per head [S, hd] x [hd, S]; then probabilities x V [S, S] x [S, hd].
    product(f, B * H * S, S, hd, q, k);
    product(f, B * H * S, hd, S, q || k, v);
    const bool o = linear("o", Q, D, q || k || v);
    stream = stream || o;
    const bool m = stream || full;
    bool mid;
    if (c.arch == Arch::kLlama) {
      const bool g = linear("gate", D, F, m), u = linear("up", D, F, m);
      mid = g || u;
    } else {
      mid = linear("up", D, F, m);
    }
    const bool down = linear("down", F, D, mid);  // evaluated whatever `stream` holds
    stream = stream || down;
  }
  // The loss: hidden states at one position per sequence [B, D] x the C
  // class rows of the output embedding [D, C].
  product(f, B, double(s.classes), D, stream || full, full);
  return f;
}

}  // namespace sparc
