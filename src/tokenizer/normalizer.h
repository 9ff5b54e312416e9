// Hugging Face tokenizer.json normalizers, applied as the tokenizers library
// applies them: the Unicode forms NFC, NFD, NFKC and NFKD (utf8proc), Replace
// with a String pattern (Gemma: ' ' -> '▁'), Prepend (Llama 2's '▁') and a
// Sequence of them. Anything else is an InputError naming the file, rather
// than a silently different tokenization.
//
// Hugging Face only ever sees valid UTF-8 (a Rust &str, a JavaScript string);
// sparc keeps invalid bytes as they are, and normalizes each valid run
// between them on its own.
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace sparc {

enum class UnicodeForm { kNfc, kNfd, kNfkc, kNfkd };

// `s` with every occurrence of `from` (not empty) replaced by `to`, left to right.
std::string replace_all(std::string_view s, std::string_view from, std::string_view to);

// `text` in normalization form `form`; invalid UTF-8 bytes stay as they are.
std::string unicode_normalize(std::string_view text, UnicodeForm form);

class Normalizer {
 public:
  // The "normalizer" of a tokenizer.json (null: none). Throws InputError
  // naming `file` for a normalizer this class does not apply.
  static Normalizer from_json(const nlohmann::json& normalizer, const std::string& file);

  bool empty() const { return steps_.empty(); }
  std::string apply(std::string_view text) const;

 private:
  struct Step {
    enum class Kind { kForm, kReplace, kPrepend } kind;
    UnicodeForm form = UnicodeForm::kNfc;
    std::string pattern, content;  // Replace: pattern -> content; Prepend: content
  };
  void add(const nlohmann::json& n, const std::string& file);

  std::vector<Step> steps_;
};

}  // namespace sparc
