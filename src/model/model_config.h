// The shape of a decoder-only transformer, independent of where its weights
// come from. One struct serves both families.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace sparc {

enum class Arch {
  kLlama,  // RMSNorm, RoPE (half-split), SwiGLU, grouped-query attention, optional q/k/v bias
  kGpt2,   // LayerNorm, learned positions, GELU (tanh), biases everywhere
};

const char* arch_name(Arch arch);
// "llama" or "gpt2"; throws InputError(where, ...) naming the accepted values.
Arch parse_arch(const std::string& name, const std::string& where);

// RoPE frequency scaling (Hugging Face `rope_scaling` / `rope_parameters`).
struct RopeScaling {
  enum class Type { kNone, kLinear, kDynamic, kLlama3, kLongRope };
  Type type = Type::kNone;
  double factor = 1.0;
  double low_freq_factor = 1.0, high_freq_factor = 4.0;  // llama3
  std::int64_t original_max_positions = 0;  // llama3, longrope (0: max_seq_len)
  std::vector<double> short_factor, long_factor;  // longrope: one per frequency (hd / 2)
  double attention_factor = 1.0;  // longrope: cos and sin are multiplied by it
};

// RoPE inverse frequencies (hd / 2 of them) for a pass whose largest position
// is `max_pos` (dynamic and longrope depend on it), and the factor on cos and
// sin. Torch-free so tests can hold it against a hand computation.
std::vector<double> rope_inv_freq(double theta, std::int64_t head_dim, const RopeScaling& s,
                                  std::int64_t max_seq_len, std::int64_t max_pos);

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
  RopeScaling rope_scaling;
  bool qk_norm = false;          // Qwen3: RMSNorm over each q and k head before RoPE
  // Sliding-window attention: a query sees the last `sliding_window` keys
  // (itself included); 0 = global. `sliding_layers` (empty = every layer)
  // marks which layers use the window.
  std::int64_t sliding_window = 0;
  std::vector<bool> sliding_layers;
  // Gemma 2/3 blocks: inputs times sqrt(D), (1 + w) RMSNorm weights (folded
  // into the weights on load), norms after attention and after the MLP
  // (post_attn_norm, post_mlp_norm), GeGLU (gelu tanh) instead of SwiGLU.
  bool gemma = false;
  // Gemma 2 scales whatever inputs it is given, prompt rows too; Gemma 3
  // scales inside its embedding module, so prompt rows enter unscaled.
  bool scale_prompt_rows = true;
  double attn_softcap = 0;      // scores -> c tanh(scores / c); 0 = none
  double final_softcap = 0;     // logits likewise
  double query_scale = 0;       // attention scale; 0 = 1 / sqrt(head_dim)
  double rope_local_theta = 0;  // RoPE base of sliding layers (Gemma 3); 0 = rope_theta
  // The Hugging Face model_type read ("llama", "qwen3", "phi3", ...): module
  // names of exports; "" for models not read from a Hugging Face directory.
  std::string family;

  bool layer_slides(std::int64_t layer) const {
    return sliding_window > 0 &&
           (sliding_layers.empty() || sliding_layers[static_cast<std::size_t>(layer)]);
  }

  // Checks the sizes are positive and consistent; throws InputError(where, ...).
  void validate(const std::string& where) const;
  std::int64_t q_dim() const { return n_heads * head_dim; }
  std::int64_t kv_dim() const { return n_kv_heads * head_dim; }
  // Parameters of the model (tied embeddings counted once).
  std::int64_t parameter_count() const;
  std::string summary() const;
};

// The Hugging Face module naming of a config's family, for exports: "gpt2",
// "phi3" (fused qkv_proj and gate_up_proj), "gemma3_multimodal" (the layers
// under model.language_model) or "llama" (every other family).
const char* module_naming(const ModelConfig& config);

}  // namespace sparc
