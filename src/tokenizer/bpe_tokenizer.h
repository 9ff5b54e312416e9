// BPE as Hugging Face runs it: byte-level, the tokenizer of the GPT-2 family
// (GPT-2, Llama 3, Qwen2/3, SmolLM), read from GPT-2's vocab.json +
// merges.txt or from a tokenizer.json, and SentencePiece-style (Gemma 3) from
// a tokenizer.json. Text is normalized, split into pre-tokenizer pieces by
// the file's regexes (PCRE2, Unicode-aware), each piece's bytes are mapped to
// GPT-2's printable characters (byte-level) or its characters looked up
// (SentencePiece-style), and the merges are applied by rank.
//
// Added tokens are matched literally in the input (the longest at the leftmost
// position) before pre-tokenization; special ones decode to no text, so
// decode(encode(s)) == s holds for valid UTF-8 that does not spell a special
// token (and, SentencePiece-style, holds no '▁', which decodes as ' ').
// Invalid UTF-8 is tokenized losslessly: each maximal run of bytes that are
// not part of a valid sequence becomes a piece of its own (byte-level BPE can
// spell any byte; SentencePiece-style takes its <0xNN> pieces) and the valid
// text around it is pre-tokenized as usual; PCRE2 never sees invalid UTF-8.
//
// encode() keeps no per-word cache: it stays const and safe to call from many
// threads without a lock, and merging a word is O(n log n) anyway.
//
// Accepted tokenizer.json features: model.type "BPE" (with ignore_merges,
// merges as "a b" strings or [a, b] pairs), in one of two forms:
// - byte-level (GPT-2, Llama 3, Qwen): a ByteLevel pre-tokenizer, last, after
//   Split (a Regex or String pattern, behavior "Isolated") and Digits stages;
// - SentencePiece-style (Gemma, Llama 2 exported by Hugging Face): no
//   ByteLevel; pieces are UTF-8 characters merged by rank, a character
//   outside the vocabulary falls back to its <0xNN> byte tokens
//   (byte_fallback), else to unk_token (fused when fuse_unk); Split stages
//   with behavior "Isolated" or "MergedWithPrevious", after a Metaspace
//   (split false); decoders Replace (a String pattern), ByteFallback, Fuse,
//   Strip and Metaspace.
// Normalizers as normalizer.h applies them (NFC, NFKC, Replace, Prepend,
// ...), on the text between added tokens, which are matched on the raw text
// (Hugging Face's normalized=false, which every file checked sets);
// added_tokens with lstrip/rstrip (ASCII whitespace; single_word is not
// applied); a TemplateProcessing post-processor for BOS/EOS. Anything else is
// an InputError rather than a silently different tokenization.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tokenizer/normalizer.h"
#include "tokenizer/tokenizer.h"

namespace sparc {

class BpeTokenizer : public Tokenizer {
 public:
  // A Hugging Face tokenizer.json. BOS/EOS come from its TemplateProcessing
  // post-processor, else from a tokenizer_config.json beside it, else
  // "<|endoftext|>" (when present) is EOS. Throws InputError naming the file.
  static BpeTokenizer from_tokenizer_json(const std::string& path);
  // The text of a tokenizer.json held in memory (tests, fuzzing); `name`
  // stands for the file in error messages. No tokenizer_config.json is read.
  static BpeTokenizer from_tokenizer_json_text(std::string_view json, const std::string& name);
  // GPT-2's vocab.json + merges.txt, pre-tokenized by GPT-2's regex.
  // "<|endoftext|>" is a special token and the EOS (no BOS) unless a
  // tokenizer_config.json beside vocab.json names others.
  static BpeTokenizer from_vocab_merges(const std::string& vocab_path,
                                        const std::string& merges_path);

  std::vector<std::int32_t> encode(std::string_view text) const override;
  // Out-of-range and unassigned ids throw InputError.
  std::string decode(const std::vector<std::int32_t>& ids) const override;
  std::int32_t vocab_size() const override { return static_cast<std::int32_t>(pieces_.size()); }
  std::optional<std::int32_t> bos_id() const override { return bos_; }
  std::optional<std::int32_t> eos_id() const override { return eos_; }
  // The token as the file spells it (byte-level characters, e.g. "Ġworld").
  std::string piece(std::int32_t id) const override;

  struct Regex;  // a compiled PCRE2 pattern; defined in the .cpp

 private:
  enum class Kind : std::uint8_t { kUnused, kModel, kAdded, kSpecial };
  struct AddedToken {
    std::string content;
    std::int32_t id;
    bool lstrip, rstrip;
  };
  struct Merge {
    std::int32_t rank, id;
  };

  BpeTokenizer() = default;
  struct Stage {  // one pre-tokenizer split
    std::shared_ptr<const Regex> regex;
    bool merged_with_previous;  // else "Isolated"
  };

  void parse_tokenizer_json(std::string_view text);
  // Appends the stages of a tokenizer.json "pre_tokenizer"; sets byte_level_
  // when it holds ByteLevel.
  void add_pre_tokenizer(const nlohmann::json& p);
  // A SentencePiece-style file's "decoder".
  void add_decoder(const nlohmann::json& d);
  void add_vocab_entry(const std::string& piece, std::int64_t id);
  // `where` locates the merge in error messages ("line 7", "model.merges[6]").
  void add_merge(const std::string& left, const std::string& right, std::int32_t rank,
                 const std::string& file, const std::string& where);
  void add_token(const std::string& content, std::int64_t id, bool special, bool lstrip,
                 bool rstrip);
  // Takes BOS/EOS left unset from tokenizer_config.json beside `path`, then
  // EOS from "<|endoftext|>".
  void read_config_beside(const std::string& path);
  void finish();
  std::optional<std::int32_t> find_id(const std::string& content) const;
  void check_id(std::int32_t id) const;

  // `first`: the text starts the input (Metaspace's prepend_scheme "first").
  void encode_text(std::string_view text, bool first, std::vector<std::int32_t>& ids) const;
  void pre_tokenize(std::string_view text, std::size_t stage, std::vector<std::int32_t>& ids) const;
  void encode_piece(std::string_view piece, std::vector<std::int32_t>& ids) const;
  // SentencePiece-style: a piece's characters (or their byte tokens, or unk)
  // before merging.
  void char_symbols(std::string_view piece, std::vector<std::int32_t>& word) const;
  void merge(std::vector<std::int32_t>& word) const;

  std::string name_;                 // the file, for error messages
  std::vector<std::string> pieces_;  // id -> token as in the file
  std::vector<std::string> bytes_;   // id -> the bytes it decodes to
  std::vector<Kind> kinds_;
  std::unordered_map<std::string, std::int32_t> vocab_;  // model piece -> id
  // byte -> its token: byte-level, the byte's character; SentencePiece-style,
  // its <0xNN> piece, -1 when absent or byte_fallback is off.
  std::array<std::int32_t, 256> byte_ids_{};
  bool byte_level_ = false;  // set by a ByteLevel pre-tokenizer
  std::optional<std::int32_t> unk_;  // SentencePiece-style only
  bool fuse_unk_ = false;
  bool byte_fallback_ = false;
  Normalizer normalizer_;
  // A Metaspace pre-tokenizer (Llama 2, Mistral exports): ' ' -> replacement,
  // which is put before a section that does not start with it (prepend_scheme
  // "always"; "first": only the section that starts the input).
  struct Metaspace {
    std::string replacement;
    bool prepend_always = false, prepend_first = false;
  };
  std::optional<Metaspace> metaspace_;
  // SentencePiece-style decoding: Replace steps, ByteFallback, Strip's count.
  std::vector<std::pair<std::string, std::string>> decode_replace_;
  bool decode_byte_fallback_ = false;
  std::size_t decode_strip_ = 0;
  std::unordered_map<std::uint64_t, Merge> merges_;      // (left id, right id) -> merge
  bool ignore_merges_ = false;
  std::vector<Stage> splitters_;                         // pre-tokenizer stages, in order
  std::vector<AddedToken> added_;                        // longest first
  std::array<bool, 256> starts_added_{};                 // first bytes of added tokens
  std::optional<std::int32_t> bos_, eos_;
};

}  // namespace sparc
