// `sparc random-model`: a llama with random weights written as a Hugging
// Face directory by streaming, one tensor in memory at a time, so a
// 7B-shaped model (13.5 GB in bf16) is written on a machine that could not
// hold it.
#pragma once

#include <cstdint>
#include <string>

#include "model/model_config.h"

namespace sparc {

// Writes config.json and model.safetensors (tensors in `dtype`: "f32",
// "bf16" or "f16") with random_weights(config, seed)'s values; the files
// equal write_hf_llama_directory(*random_weights(config, seed), dir, dtype)'s
// byte for byte. Throws InputError naming the directory or the dtype.
void write_random_llama_directory(const ModelConfig& config, std::uint64_t seed,
                                  const std::string& dir, const std::string& dtype);

}  // namespace sparc
