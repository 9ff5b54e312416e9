// An independent transformer written with plain loops and double
// accumulators, no LibTorch: the reference the LibTorch model is tested
// against.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "model/model_config.h"

namespace naive {

using Matrix = std::vector<std::vector<double>>;  // rows
using Weights = std::map<std::string, std::vector<float>>;  // canonical names, row-major

// Logits for a sequence of input vectors (token embeddings, or soft-prompt
// rows followed by token embeddings) at positions 0..S-1, all attended.
// Half-split RoPE (llama), learned positions (gpt2).
Matrix forward(const sparc::ModelConfig& config, const Weights& w, const Matrix& inputs);

// The embedding row of a token.
std::vector<double> embedding(const sparc::ModelConfig& config, const Weights& w, int token);

// A llama2.c legacy checkpoint run the way llama2.c's run.c does it: its own
// file parsing, one token at a time with a key/value cache, adjacent-pair
// RoPE on the unpermuted weights. Returns the logits after each token.
Matrix llama2c_forward(const std::string& bin_path, const std::vector<int>& tokens);

}  // namespace naive
