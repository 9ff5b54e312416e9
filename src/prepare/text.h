// Text helpers shared by the data preparers: the one definition of a
// "sentence" and of when two sentences are the same (used to keep validation
// and test text out of the pretraining corpus), deterministic ordering, and
// the split arithmetic.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace sparc::prepare {

// The fixed seed of every split and sample: outputs are a pure function of the sources.
inline constexpr std::uint64_t kSeed = 20261129;

// Sentences of a text: cut after '.', '!' or '?' (and any closing quotes or
// brackets right after it) where whitespace follows, and at line breaks.
// Pieces are trimmed; empty pieces are dropped.
std::vector<std::string> split_sentences(std::string_view text);

// The comparison form of a sentence: ASCII letters lowercased, every other
// ASCII character that is not a letter or digit turned into a space, runs of
// spaces collapsed, ends trimmed. Bytes >= 0x80 (UTF-8) are kept as they are.
std::string normalize_sentence(std::string_view text);

// Whitespace runs (including tabs and line breaks) collapsed to one space, ends trimmed.
std::string collapse_spaces(std::string_view text);

// A stable sort key for an item identified by text: a pure function of
// (seed, stream, id), so an order built from it does not depend on the order
// the items were read in.
std::uint64_t order_key(std::string_view stream, std::string_view id);

// Counts of a split in proportion train:val:test = 70:10:20 of n items.
struct SplitSizes {
  std::size_t train, val, test;
};
SplitSizes split_sizes(std::size_t n);

}  // namespace sparc::prepare
