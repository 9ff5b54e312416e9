#include "tokenizer/byte_tokenizer.h"

#include <cstdio>

#include "core/error.h"

namespace sparc {
namespace {

void check_id(std::int32_t id) {
  if (id < 0 || id >= ByteTokenizer::kVocabSize)
    throw InputError("bytes", "token id " + std::to_string(id) + " is out of range; expected 0.." +
                                  std::to_string(ByteTokenizer::kVocabSize - 1));
}

}  // namespace

std::vector<std::int32_t> ByteTokenizer::encode(std::string_view text) const {
  std::vector<std::int32_t> ids;
  ids.reserve(text.size());
  for (char c : text) ids.push_back(static_cast<unsigned char>(c) + kFirstByte);
  return ids;
}

std::string ByteTokenizer::decode(const std::vector<std::int32_t>& ids) const {
  std::string text;
  for (std::int32_t id : ids) {
    check_id(id);
    if (id >= kFirstByte) text.push_back(static_cast<char>(id - kFirstByte));
  }
  return text;
}

std::string ByteTokenizer::piece(std::int32_t id) const {
  check_id(id);
  switch (id) {
    case kPad: return "<pad>";
    case kBos: return "<bos>";
    case kEos: return "<eos>";
  }
  int b = id - kFirstByte;
  if (b >= 0x20 && b < 0x7F) return std::string(1, static_cast<char>(b));
  char hex[8];
  std::snprintf(hex, sizeof hex, "<0x%02X>", b);
  return hex;
}

}  // namespace sparc
