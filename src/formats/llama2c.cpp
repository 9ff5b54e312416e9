#include "formats/llama2c.h"

#include <cstdint>
#include <cstring>

#include "core/error.h"

namespace sparc {
namespace {

constexpr std::uint32_t kMagicV1 = 0x616b3432;  // "ak42" little-endian
constexpr std::size_t kHeaderBytesV1 = 256;
constexpr std::int32_t kMaxDim = 1 << 20;

std::int32_t read_i32(const std::uint8_t* p) {
  std::int32_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

void check_header(const Llama2cHeader& h, const std::string& where) {
  auto positive = [&](std::int32_t v, const char* field) {
    if (v <= 0 || v > kMaxDim)
      throw InputError(where, std::string("bad llama2.c header: ") + field + " = " +
                                  std::to_string(v) + ", expected a positive size (is this a " +
                                  "llama2.c checkpoint?)");
  };
  positive(h.dim, "dim");
  positive(h.hidden_dim, "hidden_dim");
  positive(h.n_layers, "n_layers");
  positive(h.n_heads, "n_heads");
  positive(h.n_kv_heads, "n_kv_heads");
  positive(h.vocab_size, "vocab_size");
  positive(h.seq_len, "seq_len");
  if (h.dim % h.n_heads != 0)
    throw InputError(where, "bad llama2.c header: dim " + std::to_string(h.dim) +
                                " is not divisible by n_heads " + std::to_string(h.n_heads));
  if (h.n_heads % h.n_kv_heads != 0)
    throw InputError(where, "bad llama2.c header: n_heads " + std::to_string(h.n_heads) +
                                " is not divisible by n_kv_heads " +
                                std::to_string(h.n_kv_heads));
  if (h.head_size() % 2 != 0)
    throw InputError(where, "bad llama2.c header: head size " + std::to_string(h.head_size()) +
                                " is odd; RoPE needs an even head size");
}

// Appends a tensor to the layout; `count` tensors of `shape` when per layer.
// With `record` false it only adds up the size: a header claiming a million
// layers is refused by its file size before a million map entries are made.
// Sizes are counted in 128 bits: each field is below 2^21, so no product of
// three fields, nor their sum, can wrap around.
struct LayoutBuilder {
  Llama2cLayout& layout;
  unsigned __int128 offset;
  bool record;
  void add(const std::string& name, std::vector<std::int64_t> shape, int layers = 0) {
    unsigned __int128 n = 1;
    for (auto d : shape) n *= static_cast<std::uint64_t>(d);
    const unsigned __int128 bytes = n * sizeof(float);
    if (!record) {
      offset += bytes * static_cast<unsigned>(layers == 0 ? 1 : layers);
      return;
    }
    if (layers == 0) {
      layout.tensors[name] = {shape, static_cast<std::uint64_t>(offset)};
      offset += bytes;
      return;
    }
    for (int l = 0; l < layers; ++l) {
      layout.tensors[name + "." + std::to_string(l)] = {shape, static_cast<std::uint64_t>(offset)};
      offset += bytes;
    }
  }
  void skip(std::uint64_t floats) { offset += static_cast<unsigned __int128>(floats) * sizeof(float); }
};

}  // namespace

Llama2cLayout parse_llama2c(const std::uint8_t* data, std::size_t size, const std::string& where) {
  Llama2cLayout layout;
  Llama2cHeader& h = layout.header;
  if (size < 7 * sizeof(std::int32_t))
    throw InputError(where, "file of " + std::to_string(size) +
                                " bytes is too short for a llama2.c header (28 bytes)");
  std::size_t fields = 0;
  std::uint32_t magic;
  std::memcpy(&magic, data, sizeof magic);
  if (magic == kMagicV1) {
    if (size < kHeaderBytesV1)
      throw InputError(where, "truncated llama2.c version-1 header (256 bytes expected)");
    std::int32_t version = read_i32(data + 4);
    if (version != 1)
      throw InputError(where, "llama2.c checkpoint version " + std::to_string(version) +
                                  " is not supported (version 1 float32 or the legacy format " +
                                  "expected; version 2 is int8-quantized)");
    h.version = 1;
    fields = 8;
  }
  std::int32_t* dst[] = {&h.dim,        &h.hidden_dim, &h.n_layers, &h.n_heads,
                         &h.n_kv_heads, &h.vocab_size, &h.seq_len};
  for (int i = 0; i < 7; ++i) *dst[i] = read_i32(data + fields + 4 * i);
  if (h.version == 1) {
    h.shared_classifier = data[fields + 28] != 0;
  } else {
    // Legacy: a negative vocab size means the classifier is stored separately.
    h.shared_classifier = h.vocab_size > 0;
    // INT32_MIN has no positive counterpart: left negative, check_header refuses it.
    if (h.vocab_size < 0 && h.vocab_size != INT32_MIN) h.vocab_size = -h.vocab_size;
  }
  check_header(h, where);

  const std::int64_t D = h.dim, F = h.hidden_dim, L = h.n_layers, V = h.vocab_size;
  const std::int64_t KV = h.kv_dim(), HS = h.head_size();
  auto lay_out = [&](LayoutBuilder& b) {
    if (h.version == 1) {
      b.add("rms_att_weight", {D}, L);
      b.add("rms_ffn_weight", {D}, L);
      b.add("rms_final_weight", {D});
      b.add("token_embedding_table", {V, D});
      b.add("wq", {D, D}, L);
      b.add("wk", {KV, D}, L);
      b.add("wv", {KV, D}, L);
      b.add("wo", {D, D}, L);
      b.add("w1", {F, D}, L);
      b.add("w2", {D, F}, L);
      b.add("w3", {F, D}, L);
    } else {
      b.add("token_embedding_table", {V, D});
      b.add("rms_att_weight", {D}, L);
      b.add("wq", {D, D}, L);
      b.add("wk", {KV, D}, L);
      b.add("wv", {KV, D}, L);
      b.add("wo", {D, D}, L);
      b.add("rms_ffn_weight", {D}, L);
      b.add("w1", {F, D}, L);
      b.add("w2", {D, F}, L);
      b.add("w3", {F, D}, L);
      b.add("rms_final_weight", {D});
      b.skip(static_cast<std::uint64_t>(h.seq_len) * HS);  // legacy RoPE tables (real, imag)
    }
    if (!h.shared_classifier)
      b.add("wcls", {V, D});
    else if (b.record)
      layout.tensors["wcls"] = layout.tensors["token_embedding_table"];
  };
  // Sizes first: nothing is recorded for a file whose size does not match.
  const std::uint64_t header_bytes = h.version == 1 ? kHeaderBytesV1 : 7 * sizeof(std::int32_t);
  LayoutBuilder count{layout, header_bytes, false};
  lay_out(count);
  if (count.offset != size) {
    const std::string implied = count.offset >> 64 ? "more than 2^64"
                                                   : std::to_string(std::uint64_t(count.offset));
    throw InputError(where, "file has " + std::to_string(size) + " bytes but its llama2.c " +
                                "header (dim=" + std::to_string(h.dim) + ", n_layers=" +
                                std::to_string(h.n_layers) + ", vocab=" +
                                std::to_string(h.vocab_size) + ") implies " + implied +
                                " (truncated or not a llama2.c file)");
  }
  LayoutBuilder b{layout, header_bytes, true};
  lay_out(b);
  return layout;
}

Llama2cCheckpoint::Llama2cCheckpoint(const std::string& path)
    : file_(path), layout_(parse_llama2c(file_.data(), file_.size(), path)) {}

const Llama2cTensor& Llama2cCheckpoint::tensor(const std::string& name, int layer) const {
  std::string key = layer < 0 ? name : name + "." + std::to_string(layer);
  auto it = layout_.tensors.find(key);
  if (it == layout_.tensors.end()) throw InputError(path(), "no tensor '" + key + "'");
  return it->second;
}

const float* Llama2cCheckpoint::data(const std::string& name, int layer) const {
  return reinterpret_cast<const float*>(file_.data() + tensor(name, layer).offset);
}

}  // namespace sparc
