// Hugging Face model directories: config.json plus model.safetensors or a
// sharded model.safetensors.index.json. One file per family
// (model/family_*.cpp: llama, mistral, qwen2, qwen3, phi3, gpt2), chosen by
// config.json's model_type; docs/models.md lists them.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "model/weight_source.h"

namespace sparc {

// Reads config.json into a ModelConfig; errors name the file and the field.
ModelConfig parse_hf_config(const std::string& json_text, const std::string& where);

// Opens a directory; throws InputError naming the path and what is missing.
std::unique_ptr<WeightSource> open_hf_directory(const std::string& dir);

// Writes `source` as a Hugging Face llama directory (config.json +
// model.safetensors, tensors in `dtype`: "f32", "bf16" or "f16"). Used to
// convert llama2.c checkpoints. gpt2 sources are refused.
void write_hf_llama_directory(const WeightSource& source, const std::string& dir,
                              const std::string& dtype = "f32");

// The same from a config and a function giving each canonical tensor (name,
// shape), written one tensor at a time (`sparc random-model`, conversions).
using TensorOf =
    std::function<torch::Tensor(const std::string& name, const std::vector<std::int64_t>& shape)>;
void write_hf_llama_tensors(const ModelConfig& config, const std::string& dir,
                            const std::string& dtype, const TensorOf& tensor_of);

}  // namespace sparc
