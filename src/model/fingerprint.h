// A base model's fingerprint, without reading its weights: ranks compare it
// at start-up, and checkpoints store it so a resume can check it is the same
// model. The recipe must therefore never change (tests/model/fingerprint_test.cpp
// pins it). fnv1a (core/hash.h) chained over:
//   - a llama2.c file: "llama2c", its size in decimal, its first 256 bytes
//     (fewer when shorter);
//   - a Hugging Face directory: "hf", config.json when present, then for each
//     file named *.safetensors, by name in byte order: the name, its size in
//     decimal, and its JSON header as stored (at most 100 MiB).
// Quirks kept from the first version: a file that cannot be stat'ed adds
// nothing after its name (or tag); a safetensors file of fewer than 8 bytes
// adds those bytes instead of a header, one of 8 to 255 bytes adds no header.
#pragma once

#include <cstdint>
#include <string>

namespace sparc {

std::uint64_t model_fingerprint(const std::string& model_path);

}  // namespace sparc
