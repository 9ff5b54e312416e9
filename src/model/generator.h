// Autoregressive decoding with a frozen model: greedy at temperature 0,
// otherwise sampling with draws keyed by (seed, step), so a seed always
// gives the same text.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "model/transformer.h"

namespace sparc {

struct GenerateOptions {
  int max_new_tokens = 64;
  double temperature = 0.0;
  std::uint64_t seed = 0;
  std::optional<std::int32_t> eos_id;  // stop when produced
};

// Returns the new tokens. `on_token` (optional) sees each as it is produced.
// Stops early at EOS or when the sequence reaches the model's max_seq_len.
std::vector<std::int32_t> generate(const Transformer& model, const std::vector<std::int32_t>& prompt,
                                   const GenerateOptions& options,
                                   const std::function<void(std::int32_t)>& on_token = {});

// Picks a token from one row of logits: argmax at temperature 0 (lowest id
// on ties), else a draw from softmax(logits / T) using `uniform` in [0, 1).
std::int32_t pick_token(const std::vector<float>& logits, double temperature, double uniform);

}  // namespace sparc
