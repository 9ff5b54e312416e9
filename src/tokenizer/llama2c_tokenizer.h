// The tokenizer of llama2.c models: tokenizer.bin, a SentencePiece-style BPE
// vocabulary with byte fallback. encode() reproduces llama2.c's run.c encode()
// token for token, so prompts tokenize as they did when the model was trained.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace sparc {

class Llama2cTokenizer : public Tokenizer {
 public:
  // Reads a tokenizer.bin. Throws InputError naming `path` when the file is
  // missing or malformed.
  explicit Llama2cTokenizer(const std::string& path);
  // Parses the bytes of a tokenizer.bin held in memory (tests, fuzzing);
  // `name` stands for the file in error messages.
  static Llama2cTokenizer from_bytes(std::string_view bytes, const std::string& name);

  // What encode() may produce a piece for (bit flags).
  enum PieceUse : std::uint8_t {
    kFromText = 1,      // a unit of text or a merge, found by its text
    kByteFallback = 2,  // "<0xNN>": byte NN of a unit the vocabulary lacks
    kUserDefined = 4,   // matched whole in the text first (longest wins), never merged
  };
  // A SentencePiece BPE vocabulary, which llama2.c's tokenizer.bin files were
  // exported from: pieces spell SentencePiece's '▁' (U+2581) as ' '.
  struct Vocabulary {
    std::vector<std::string> pieces;
    std::vector<float> scores;
    std::vector<std::uint8_t> uses;  // PieceUse flags of each piece
    std::int32_t unk_id = kUnk;      // what a byte without a kByteFallback piece becomes
    bool byte_fallback = true;       // false: a run of missing units becomes one unk_id
    bool dummy_prefix = true;        // encode() starts non-empty text with " "
  };
  // The encoder of SentencePieceTokenizer. Its decode() and BOS/EOS keep
  // llama2.c's conventions. Throws InputError naming `name` when the vectors'
  // sizes differ or unk_id is out of range.
  static Llama2cTokenizer from_vocabulary(Vocabulary vocab, const std::string& name);

  std::vector<std::int32_t> encode(std::string_view text) const override;
  // Out-of-range ids throw InputError.
  std::string decode(const std::vector<std::int32_t>& ids) const override;
  std::int32_t vocab_size() const override { return static_cast<std::int32_t>(pieces_.size()); }
  std::optional<std::int32_t> bos_id() const override { return kBos; }
  std::optional<std::int32_t> eos_id() const override { return kEos; }
  std::string piece(std::int32_t id) const override;

  float score(std::int32_t id) const;
  // The file header's; from_vocabulary(): the longest piece.
  std::int32_t max_token_length() const { return max_token_length_; }

  // Fixed ids of the llama2.c / SentencePiece convention.
  static constexpr std::int32_t kUnk = 0;
  static constexpr std::int32_t kBos = 1;
  static constexpr std::int32_t kEos = 2;

 private:
  Llama2cTokenizer() = default;
  void parse(std::string_view bytes);
  // Builds the lookup tables from pieces_, scores_ and uses_.
  void index();
  void check_id(std::int32_t id) const;
  // Appends the token of one UTF-8 unit, or its bytes' fallback tokens.
  void push_unit(std::string_view unit, std::string& buf, std::vector<std::int32_t>& ids) const;
  // The longest kUserDefined piece `text` starts with, or -1.
  std::int32_t user_defined_at(std::string_view text) const;
  void merge(std::vector<std::int32_t>& ids) const;

  std::string name_;  // the file, for error messages
  std::int32_t max_token_length_ = 0;
  std::vector<std::string> pieces_;
  std::vector<float> scores_;
  std::vector<std::uint8_t> uses_;  // PieceUse flags per id
  std::int32_t unk_id_ = kUnk;
  bool byte_fallback_ = true;
  bool dummy_prefix_ = true;
  std::vector<std::int32_t> user_defined_;             // kUserDefined ids, longest piece first
  std::unordered_map<std::string, std::int32_t> ids_;  // kFromText piece -> first id with it
  std::array<std::int32_t, 256> byte_ids_{};           // byte -> its <0xNN> token, or unk_id_
  std::vector<std::int16_t> byte_of_;                  // id -> byte of a <0xNN> token, or -1
};

}  // namespace sparc
