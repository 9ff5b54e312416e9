#include "model/model_config.h"

#include <sstream>

#include "core/error.h"

namespace sparc {

const char* arch_name(Arch arch) { return arch == Arch::kLlama ? "llama" : "gpt2"; }

Arch parse_arch(const std::string& name, const std::string& where) {
  if (name == "llama") return Arch::kLlama;
  if (name == "gpt2") return Arch::kGpt2;
  throw InputError(where, "unknown architecture '" + name + "', expected 'llama' or 'gpt2'");
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
}

std::int64_t ModelConfig::parameter_count() const {
  const std::int64_t D = dim;
  std::int64_t attn = D * q_dim() + 2 * D * kv_dim() + q_dim() * D;
  std::int64_t per_layer = 0;
  std::int64_t total = vocab_size * D;  // token embedding
  if (arch == Arch::kLlama) {
    if (qkv_bias) attn += q_dim() + 2 * kv_dim();
    per_layer = attn + 3 * D * ffn_dim + 2 * D;  // gate, up, down; two RMSNorm weights
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
  return s.str();
}

}  // namespace sparc
