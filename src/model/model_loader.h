// Opens a model by path, whatever its format, as a WeightSource with
// canonical tensor names (see weight_source.h):
//   - a llama2.c checkpoint file (.bin, legacy or version 1);
//   - a Hugging Face model directory (config.json + safetensors).
#pragma once

#include <memory>
#include <string>

#include "model/weight_source.h"

namespace sparc {

// Throws InputError naming the path and the problem.
std::unique_ptr<WeightSource> open_model(const std::string& path);

// The tokenizer that belongs to a model when none is given: tokenizer.bin
// beside a llama2.c checkpoint, or the model directory itself (its
// tokenizer files). Empty when there is none.
std::string default_tokenizer_path(const std::string& model_path);

}  // namespace sparc
