// Where a model's frozen weights come from. Every format (llama2.c .bin,
// Hugging Face safetensors directories, tensors made in memory) is adapted to
// one set of canonical tensor names, so the transformer has a single loader:
//
//   tok_embeddings              [V, D]
//   pos_embeddings              [max_seq_len, D]            gpt2 only
//   layers.<i>.attn_norm.weight [D]          (.bias: gpt2)
//   layers.<i>.q.weight         [H*hd, D]    (.bias: gpt2, or llama with qkv_bias)
//   layers.<i>.k.weight         [KV*hd, D]   (.bias: likewise)
//   layers.<i>.v.weight         [KV*hd, D]   (.bias: likewise)
//   layers.<i>.q_norm.weight    [hd]                         qk_norm (Qwen3)
//   layers.<i>.k_norm.weight    [hd]                         qk_norm
//   layers.<i>.o.weight         [D, H*hd]    (.bias: gpt2)
//   layers.<i>.mlp_norm.weight  [D]          (.bias: gpt2)
//   layers.<i>.post_attn_norm.weight [D]                     gemma (after attention)
//   layers.<i>.post_mlp_norm.weight  [D]                     gemma (after the MLP)
//   layers.<i>.gate.weight      [F, D]                       llama only
//   layers.<i>.up.weight        [F, D]       (.bias: gpt2)
//   layers.<i>.down.weight      [D, F]       (.bias: gpt2)
//   norm.weight                 [D]          (.bias: gpt2)
//   lm_head.weight              [V, D]       absent when the embeddings are tied
//
// Matrices are [out, in] (nn.Linear's layout). RoPE rotates halves of each
// head (x[i], x[i + hd/2]), as Hugging Face does; sources stored with the
// adjacent-pair convention (llama2.c) permute the rows of q and k on load.
#pragma once

#include <torch/torch.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "model/model_config.h"

namespace sparc {

class WeightSource {
 public:
  virtual ~WeightSource() = default;
  virtual const ModelConfig& config() const = 0;
  // The file or directory, for error messages.
  virtual std::string describe() const = 0;
  virtual bool has(const std::string& name) const = 0;
  // The tensor as a CPU tensor in its stored precision. Throws InputError
  // naming the source and the tensor (by its stored name) when it is absent.
  virtual torch::Tensor load(const std::string& name) const = 0;
  // The name the format stores a canonical tensor under, for messages
  // ("model.layers.0.self_attn.k_proj.weight" for "layers.0.k.weight").
  virtual std::string stored_name(const std::string& name) const { return name; }

  // A tensor's shape and kind without reading its data (the sharded loader
  // checks every tensor before reading only its slice).
  struct Meta {
    std::vector<std::int64_t> shape;
    bool floating = true;
  };
  virtual Meta meta(const std::string& name) const {
    auto t = load(name);
    return {t.sizes().vec(), t.is_floating_point()};
  }
  // Elements [first, first + count) of the flattened tensor, in its stored
  // precision on the CPU. Sources that can read a range do so without
  // touching the rest of the tensor.
  virtual torch::Tensor load_elements(const std::string& name, std::int64_t first,
                                      std::int64_t count) const {
    return load(name).reshape(-1).slice(0, first, first + count).clone();
  }
};

// Canonical tensors held in memory: tests, random models, conversions.
class TensorMapSource : public WeightSource {
 public:
  TensorMapSource(ModelConfig config, std::map<std::string, torch::Tensor> tensors,
                  std::string name = "<memory>");
  const ModelConfig& config() const override { return config_; }
  std::string describe() const override { return name_; }
  bool has(const std::string& name) const override { return tensors_.count(name) != 0; }
  torch::Tensor load(const std::string& name) const override;
  std::map<std::string, torch::Tensor>& tensors() { return tensors_; }

 private:
  ModelConfig config_;
  std::map<std::string, torch::Tensor> tensors_;
  std::string name_;
};

// The canonical names and shapes a config requires, in a stable order.
std::vector<std::pair<std::string, std::vector<std::int64_t>>> expected_tensors(
    const ModelConfig& config);

// A model with random weights (normal, std 0.02; norms at 1): tests and benchmarks.
std::unique_ptr<TensorMapSource> random_weights(const ModelConfig& config, std::uint64_t seed);
// One tensor of it: drawn from `gen`, so drawing expected_tensors(config) in
// order from a generator seeded `seed` gives random_weights' tensors one at
// a time (write_random_llama_directory streams them).
torch::Tensor random_weight(const std::string& name, const std::vector<std::int64_t>& shape,
                            at::Generator& gen);

// Converts adjacent-pair RoPE rows (llama2.c, Meta's original checkpoints)
// to half-split rows, per head: out row j < hd/2 takes row 2j, row hd/2 + j
// takes row 2j + 1. `rows_per_head` is hd; works on [n_heads*hd, ...].
torch::Tensor pair_to_half_rope_rows(const torch::Tensor& w, std::int64_t head_dim);
// The inverse permutation.
torch::Tensor half_to_pair_rope_rows(const torch::Tensor& w, std::int64_t head_dim);

}  // namespace sparc
