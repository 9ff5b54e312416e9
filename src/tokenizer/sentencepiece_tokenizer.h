// SentencePiece BPE and unigram models (tokenizer.model: Llama 2, TinyLlama,
// Gemma's settings; unigram models as spm_train writes them). The file is
// a serialized protobuf ModelProto, read here by hand: linking libsentencepiece
// next to LibTorch's libprotobuf crashes at load time (both define protobuf's
// symbols). BPE encoding is llama2.c's, whose tokenizer.bin files were
// exported from these models, run by Llama2cTokenizer, so ids match
// spm_encode; unigram encoding is SentencePiece's Viterbi (unigram_model.h).
// BOS/EOS are the model's own (none when it sets them to -1). decode() writes
// control tokens (BOS, EOS, padding) as no text and <unk> as SentencePiece
// does (" ⁇ "). Normalization is SentencePiece's: the precompiled rule
// (nmt_nfkc, spm_train's default, or none for identity), user-defined pieces
// passed through unnormalized, then whitespace folding and escaping; and
// UNUSED pieces are never produced (SentencePiece merges into them and splits
// them again; neither Llama 2 nor TinyLlama has any).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/llama2c_tokenizer.h"
#include "tokenizer/sentencepiece_charsmap.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unigram_model.h"

namespace sparc {

class SentencePieceTokenizer : public Tokenizer {
 public:
  // Reads a tokenizer.model. Throws InputError naming `path` when the file is
  // missing, malformed, or a model this class does not support.
  explicit SentencePieceTokenizer(const std::string& path);
  // Parses a serialized model held in memory (tests, fuzzing); `name` stands
  // for the file in error messages.
  static SentencePieceTokenizer from_bytes(std::string_view bytes, const std::string& name);

  std::vector<std::int32_t> encode(std::string_view text) const override;
  // Out-of-range ids throw InputError.
  std::string decode(const std::vector<std::int32_t>& ids) const override;
  std::int32_t vocab_size() const override { return static_cast<std::int32_t>(pieces_.size()); }
  std::optional<std::int32_t> bos_id() const override { return bos_; }
  std::optional<std::int32_t> eos_id() const override { return eos_; }
  // As the file spells it: '▁' for a space.
  std::string piece(std::int32_t id) const override;

  // ModelProto.SentencePiece.Type.
  enum class PieceType : std::uint8_t {
    kNormal = 1,
    kUnknown = 2,
    kControl = 3,
    kUserDefined = 4,
    kUnused = 5,
    kByte = 6,
  };
  PieceType type(std::int32_t id) const;

 private:
  SentencePieceTokenizer() = default;
  void load(std::string_view bytes);
  void check_id(std::int32_t id) const;
  // SentencePiece's normalization, in the encoder's spelling (' ' for '▁'),
  // without the dummy prefix.
  std::string normalize(std::string_view text) const;
  // The normalized text of the longest unit `text` starts with, and its length.
  std::pair<std::string_view, std::size_t> normalize_prefix(std::string_view text) const;

  std::string name_;  // the file, for error messages
  std::vector<std::string> pieces_;
  std::vector<PieceType> types_;
  std::optional<std::int32_t> bos_, eos_;
  bool add_dummy_prefix_ = true;
  bool remove_extra_whitespaces_ = true;
  bool escape_whitespaces_ = true;
  std::optional<PrecompiledCharsMap> charsmap_;  // none: identity
  // Pieces kept as they are, by first byte, longest first.
  std::vector<std::vector<std::string>> user_defined_ = std::vector<std::vector<std::string>>(256);
  std::optional<Llama2cTokenizer> encoder_;      // BPE models
  std::optional<UnigramModel> unigram_;       // unigram models
};

}  // namespace sparc
