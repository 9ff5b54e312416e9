#include "tokenizer/sentencepiece_charsmap.h"

#include <cstring>

#include "core/error.h"

namespace sparc {

namespace {

// darts-clone's DoubleArrayUnit fields.
bool has_leaf(std::uint32_t u) { return (u >> 8 & 1) != 0; }
std::uint32_t value(std::uint32_t u) { return u & ((1u << 31) - 1); }
std::uint32_t label(std::uint32_t u) { return u & ((1u << 31) | 0xFF); }
std::uint32_t offset(std::uint32_t u) { return (u >> 10) << ((u & (1u << 9)) >> 6); }

std::uint32_t load_le32(const char* p) {
  std::uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = v << 8 | static_cast<unsigned char>(p[i]);
  return v;
}

}  // namespace

PrecompiledCharsMap::PrecompiledCharsMap(std::string_view blob, const std::string& file) {
  auto fail = [&](const std::string& what) {
    throw InputError(file, "malformed precompiled_charsmap: " + what);
  };
  if (blob.size() < 4) fail("shorter than its 4-byte header");
  const std::uint32_t trie_size = load_le32(blob.data());
  if (trie_size % 4 != 0 || trie_size == 0 || trie_size > blob.size() - 4)
    fail("trie size " + std::to_string(trie_size) + " does not fit the " +
         std::to_string(blob.size()) + "-byte map");
  units_.resize(trie_size / 4);
  for (std::size_t i = 0; i < units_.size(); ++i) units_[i] = load_le32(blob.data() + 4 + 4 * i);
  replacements_ = std::string(blob.substr(4 + trie_size));
}

// darts-clone's commonPrefixSearch, keeping the longest match; every index
// is checked, so a hostile map reads nothing out of bounds.
std::pair<std::string_view, std::size_t> PrecompiledCharsMap::longest_prefix(
    std::string_view text) const {
  std::size_t best_length = 0;
  std::uint32_t best_value = 0;
  std::size_t pos = offset(units_[0]);
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    pos ^= c;
    if (pos >= units_.size()) break;
    const std::uint32_t unit = units_[pos];
    if (label(unit) != c) break;
    pos ^= offset(unit);
    if (has_leaf(unit)) {
      if (pos >= units_.size()) break;
      best_length = i + 1;
      best_value = value(units_[pos]);
    }
  }
  if (best_length == 0 || best_value >= replacements_.size()) return {std::string_view(), 0};
  const char* start = replacements_.data() + best_value;
  const std::size_t left = replacements_.size() - best_value;
  const void* nul = std::memchr(start, '\0', left);
  const std::size_t n = nul ? static_cast<const char*>(nul) - start : left;
  return {std::string_view(start, n), best_length};
}

}  // namespace sparc
