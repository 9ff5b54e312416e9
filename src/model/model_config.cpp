#include "model/model_config.h"

#include <cmath>
#include <sstream>

#include "core/error.h"

namespace sparc {

const char* arch_name(Arch arch) { return arch == Arch::kLlama ? "llama" : "gpt2"; }

Arch parse_arch(const std::string& name, const std::string& where) {
  if (name == "llama") return Arch::kLlama;
  if (name == "gpt2") return Arch::kGpt2;
  throw InputError(where, "unknown architecture '" + name + "', expected 'llama' or 'gpt2'");
}

std::vector<double> rope_inv_freq(double theta, std::int64_t head_dim, const RopeScaling& s,
                                  std::int64_t max_seq_len, std::int64_t max_pos) {
  using T = RopeScaling::Type;
  const std::int64_t half = head_dim / 2;
  const double d = double(head_dim);
  const std::int64_t seq = max_pos + 1;
  const std::int64_t original = s.original_max_positions > 0 ? s.original_max_positions : max_seq_len;
  double base = theta;
  // Dynamic NTK: the base grows once a pass runs past the trained length.
  if (s.type == T::kDynamic && seq > max_seq_len)
    base = theta * std::pow(s.factor * double(seq) / double(max_seq_len) - (s.factor - 1.0),
                            d / (d - 2.0));
  std::vector<double> inv(static_cast<std::size_t>(half));
  for (std::int64_t j = 0; j < half; ++j) {
    double f = std::pow(base, -2.0 * double(j) / d);
    switch (s.type) {
      case T::kLinear: f /= s.factor; break;
      case T::kLlama3: {
        // Llama 3.1: long wavelengths slow down by `factor`, short ones stay,
        // those between are interpolated.
        const double wavelen = 2.0 * M_PI / f;
        const double low_wavelen = double(original) / s.low_freq_factor;
        const double high_wavelen = double(original) / s.high_freq_factor;
        if (wavelen > low_wavelen) {
          f /= s.factor;
        } else if (wavelen >= high_wavelen) {
          const double smooth = (double(original) / wavelen - s.low_freq_factor) /
                                (s.high_freq_factor - s.low_freq_factor);
          f = (1.0 - smooth) * f / s.factor + smooth * f;
        }
        break;
      }
      case T::kLongRope: {
        const auto& ext = seq > original ? s.long_factor : s.short_factor;
        f /= ext[static_cast<std::size_t>(j)];
        break;
      }
      default: break;
    }
    inv[static_cast<std::size_t>(j)] = f;
  }
  return inv;
}

const char* module_naming(const ModelConfig& c) {
  if (c.arch == Arch::kGpt2) return "gpt2";
  if (c.family == "gemma3") return "gemma3_multimodal";
  return c.family == "phi3" ? "phi3" : "llama";
}

void ModelConfig::validate(const std::string& where) const {
  auto positive = [&](std::int64_t v, const char* field) {
    if (v <= 0)
      throw InputError(where, std::string(field) + " = " + std::to_string(v) +
                                  ", expected a positive integer");
  };
  positive(vocab_size, "vocab_size");
  positive(dim, "hidden size");
  positive(n_layers, "number of layers");
  positive(n_heads, "number of attention heads");
  positive(n_kv_heads, "number of key/value heads");
  positive(head_dim, "head dimension");
  positive(ffn_dim, "feed-forward size");
  positive(max_seq_len, "maximum sequence length");
  if (n_heads % n_kv_heads != 0)
    throw InputError(where, "attention heads (" + std::to_string(n_heads) +
                                ") must be a multiple of key/value heads (" +
                                std::to_string(n_kv_heads) + ")");
  if (arch == Arch::kLlama && head_dim % 2 != 0)
    throw InputError(where, "head dimension " + std::to_string(head_dim) +
                                " is odd; RoPE needs an even head dimension");
  if (arch == Arch::kGpt2 && (n_kv_heads != n_heads || head_dim * n_heads != dim))
    throw InputError(where, "gpt2 needs n_kv_heads == n_heads and head_dim * n_heads == dim");
  if (!(norm_eps > 0)) throw InputError(where, "norm epsilon must be positive");
  if (!sliding_layers.empty() && std::int64_t(sliding_layers.size()) != n_layers)
    throw InputError(where, "layer_types has " + std::to_string(sliding_layers.size()) +
                                " entries, expected one per layer (" + std::to_string(n_layers) + ")");
  if (sliding_window < 0) throw InputError(where, "sliding_window must not be negative");
  if (rope_scaling.type == RopeScaling::Type::kLongRope)
    for (const auto* f : {&rope_scaling.short_factor, &rope_scaling.long_factor})
      if (std::int64_t(f->size()) != head_dim / 2)
        throw InputError(where, "rope_scaling short_factor/long_factor have " +
                                    std::to_string(f->size()) + " entries, expected head_dim / 2 = " +
                                    std::to_string(head_dim / 2));
}

std::int64_t ModelConfig::parameter_count() const {
  const std::int64_t D = dim;
  std::int64_t attn = D * q_dim() + 2 * D * kv_dim() + q_dim() * D;
  std::int64_t per_layer = 0;
  std::int64_t total = vocab_size * D;  // token embedding
  if (arch == Arch::kLlama) {
    if (qkv_bias) attn += q_dim() + 2 * kv_dim();
    if (qk_norm) attn += 2 * head_dim;            // q_norm, k_norm
    per_layer = attn + 3 * D * ffn_dim + 2 * D;  // gate, up, down; two RMSNorm weights
    if (gemma) per_layer += 2 * D;                // norms after attention and MLP
    total += D;                                  // final norm
  } else {
    attn += q_dim() + 2 * kv_dim() + D;                    // biases of q, k, v, o
    per_layer = attn + 2 * D * ffn_dim + ffn_dim + D + 4 * D;  // MLP + biases; two LayerNorms
    total += max_seq_len * D + 2 * D;                      // positions; final LayerNorm
  }
  total += n_layers * per_layer;
  if (!tie_embeddings) total += vocab_size * D;
  return total;
}

std::string ModelConfig::summary() const {
  std::ostringstream s;
  s << arch_name(arch) << " D=" << dim << " layers=" << n_layers << " heads=" << n_heads
    << " kv_heads=" << n_kv_heads << " head_dim=" << head_dim << " ffn=" << ffn_dim
    << " vocab=" << vocab_size << " max_seq=" << max_seq_len;
  if (!family.empty()) s << " family=" << family;
  if (sliding_window > 0) s << " sliding_window=" << sliding_window;
  return s.str();
}

}  // namespace sparc
