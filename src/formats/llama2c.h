// llama2.c checkpoints (.bin): the legacy format (a header of 7 int32, then
// float32 tensors) and version 1 (magic "ak42", version, the same 7 int32, a
// shared-classifier flag, padded to 256 bytes, then float32 tensors in
// another order). Only parsing and bounds checking live here; converting the
// tensors into the model's layout is the model loader's job.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/file.h"

namespace sparc {

struct Llama2cHeader {
  std::int32_t dim = 0;
  std::int32_t hidden_dim = 0;
  std::int32_t n_layers = 0;
  std::int32_t n_heads = 0;
  std::int32_t n_kv_heads = 0;
  std::int32_t vocab_size = 0;  // always positive here; see shared_classifier
  std::int32_t seq_len = 0;
  bool shared_classifier = true;  // the output layer reuses the token embedding
  int version = 0;                // 0 = legacy, 1 = "ak42" version 1
  std::int32_t head_size() const { return dim / n_heads; }
  std::int32_t kv_dim() const { return n_kv_heads * head_size(); }
};

// A tensor of the checkpoint: llama2.c's name (token_embedding_table,
// rms_att_weight, wq, wk, wv, wo, rms_ffn_weight, w1, w2, w3,
// rms_final_weight, wcls) and, for per-layer tensors, one entry per layer.
struct Llama2cTensor {
  std::vector<std::int64_t> shape;  // [out, in] for matrices, as nn.Linear
  std::uint64_t offset = 0;         // byte offset of the first float in the file
};

struct Llama2cLayout {
  Llama2cHeader header;
  // key: name for global tensors, "name.<layer>" for per-layer ones
  std::map<std::string, Llama2cTensor> tensors;
};

// Validates the header and the file size against it. `where` names the file.
// Throws InputError.
Llama2cLayout parse_llama2c(const std::uint8_t* data, std::size_t size, const std::string& where);

class Llama2cCheckpoint {
 public:
  explicit Llama2cCheckpoint(const std::string& path);
  const Llama2cHeader& header() const { return layout_.header; }
  const std::string& path() const { return file_.path(); }
  // Pointer to the float32 data of a tensor ("wq", layer 3) inside the mapping.
  const float* data(const std::string& name, int layer = -1) const;
  const Llama2cTensor& tensor(const std::string& name, int layer = -1) const;

 private:
  MappedFile file_;
  Llama2cLayout layout_;
};

}  // namespace sparc
