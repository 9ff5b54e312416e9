// The tokenizer interface every model family uses. Implementations: llama2.c
// tokenizer.bin (SentencePiece-style BPE with byte fallback), a byte-level
// tokenizer for self-made models, byte-level BPE from Hugging Face
// tokenizer.json or GPT-2 vocab.json + merges.txt, and SentencePiece models.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sparc {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // Text to ids, without BOS/EOS.
  virtual std::vector<std::int32_t> encode(std::string_view text) const = 0;
  // Ids to text; special tokens (BOS, EOS, padding) produce no text.
  // decode(encode(s)) == s for every valid UTF-8 string s.
  virtual std::string decode(const std::vector<std::int32_t>& ids) const = 0;
  virtual std::int32_t vocab_size() const = 0;
  virtual std::optional<std::int32_t> bos_id() const { return std::nullopt; }
  virtual std::optional<std::int32_t> eos_id() const { return std::nullopt; }
  // The raw piece of one token (for logs and debugging).
  virtual std::string piece(std::int32_t id) const = 0;

  // encode() preceded by BOS when the tokenizer has one.
  std::vector<std::int32_t> encode_with_bos(std::string_view text) const;
};

// Opens a tokenizer by path. A directory: its tokenizer.json, else its
// vocab.json + merges.txt, else its tokenizer.model, else its tokenizer.bin.
// A file: *.json a Hugging Face tokenizer.json (vocab.json or merges.txt: the
// GPT-2 pair in that directory), *.model a SentencePiece model, anything else
// a llama2.c tokenizer.bin. The word "bytes": the byte-level tokenizer.
// Throws InputError naming the path.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path);

}  // namespace sparc
