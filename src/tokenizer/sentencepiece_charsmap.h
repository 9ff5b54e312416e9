// A SentencePiece precompiled normalization map (NormalizerSpec
// precompiled_charsmap: spm_train's nmt_nfkc, nfkc, ... rules): a darts-clone
// double-array trie from input strings to offsets of their replacements.
// Layout: a little-endian uint32 trie size in bytes, the trie's 32-bit units,
// then the NUL-terminated replacement strings.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sparc {

class PrecompiledCharsMap {
 public:
  // Throws InputError naming `file` when the blob is malformed.
  PrecompiledCharsMap(std::string_view blob, const std::string& file);

  // The longest key `text` starts with: its replacement and its length in
  // bytes; length 0 when no key matches.
  std::pair<std::string_view, std::size_t> longest_prefix(std::string_view text) const;

 private:
  std::vector<std::uint32_t> units_;
  std::string replacements_;
};

}  // namespace sparc
