// The shape of a decoder-only transformer, independent of where its weights
// come from. One struct serves both families.
#pragma once

#include <cstdint>
#include <string>

namespace sparc {

enum class Arch {
  kLlama,  // RMSNorm, RoPE (half-split), SwiGLU, grouped-query attention, optional q/k/v bias
  kGpt2,   // LayerNorm, learned positions, GELU (tanh), biases everywhere
};

const char* arch_name(Arch arch);
// "llama" or "gpt2"; throws InputError(where, ...) naming the accepted values.
Arch parse_arch(const std::string& name, const std::string& where);

struct ModelConfig {
  Arch arch = Arch::kLlama;
  std::int64_t vocab_size = 0;
  std::int64_t dim = 0;          // hidden size D
  std::int64_t n_layers = 0;
  std::int64_t n_heads = 0;
  std::int64_t n_kv_heads = 0;   // == n_heads without grouped-query attention
  std::int64_t head_dim = 0;     // usually dim / n_heads
  std::int64_t ffn_dim = 0;      // SwiGLU hidden size, or the GELU MLP's inner size
  std::int64_t max_seq_len = 0;  // the learned position table's size (gpt2); advisory for llama
  double norm_eps = 1e-5;
  double rope_theta = 10000.0;
  bool qkv_bias = false;         // llama only: Qwen2-style biases on q, k, v
  bool tie_embeddings = true;    // the output layer reuses the token embedding

  // Checks the sizes are positive and consistent; throws InputError(where, ...).
  void validate(const std::string& where) const;
  std::int64_t q_dim() const { return n_heads * head_dim; }
  std::int64_t kv_dim() const { return n_kv_heads * head_dim; }
  // Parameters of the model (tied embeddings counted once).
  std::int64_t parameter_count() const;
  std::string summary() const;
};

}  // namespace sparc
