// A byte-level tokenizer for self-made models: no vocabulary file, every byte
// is a token, so any text (valid UTF-8 or not) encodes losslessly.
#pragma once

#include "tokenizer/tokenizer.h"

namespace sparc {

class ByteTokenizer : public Tokenizer {
 public:
  static constexpr std::int32_t kPad = 0;
  static constexpr std::int32_t kBos = 1;
  static constexpr std::int32_t kEos = 2;
  static constexpr std::int32_t kFirstByte = 3;  // byte b is token b + kFirstByte
  static constexpr std::int32_t kVocabSize = kFirstByte + 256;

  std::vector<std::int32_t> encode(std::string_view text) const override;
  // Out-of-range ids throw InputError.
  std::string decode(const std::vector<std::int32_t>& ids) const override;
  std::int32_t vocab_size() const override { return kVocabSize; }
  std::optional<std::int32_t> bos_id() const override { return kBos; }
  std::optional<std::int32_t> eos_id() const override { return kEos; }
  // "<pad>", "<bos>", "<eos>", a printable ASCII byte as itself, other bytes
  // as "<0xNN>" (SentencePiece's notation) so logs stay readable.
  std::string piece(std::int32_t id) const override;
};

}  // namespace sparc
