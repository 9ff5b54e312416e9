#include "prepare/text.h"

#include "core/hash.h"
#include "core/random.h"

namespace sparc::prepare {
namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
bool is_closer(char c) { return c == '"' || c == '\'' || c == ')' || c == ']'; }

void push_trimmed(std::vector<std::string>& out, std::string_view piece) {
  std::string s = collapse_spaces(piece);
  if (!s.empty()) out.push_back(std::move(s));
}

}  // namespace

std::vector<std::string> split_sentences(std::string_view text) {
  std::vector<std::string> out;
  std::size_t start = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '\n' || c == '\r') {
      push_trimmed(out, text.substr(start, i - start));
      start = i + 1;
      continue;
    }
    if (c != '.' && c != '!' && c != '?') continue;
    std::size_t end = i + 1;
    while (end < text.size() && (is_closer(text[end]) || text[end] == '.' || text[end] == '!' ||
                                 text[end] == '?'))
      ++end;
    if (end < text.size() && !is_space(text[end])) continue;
    push_trimmed(out, text.substr(start, end - start));
    start = end;
    i = end - 1;
  }
  if (start < text.size()) push_trimmed(out, text.substr(start));
  return out;
}

std::string normalize_sentence(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  bool pending_space = false;
  for (char ch : text) {
    const unsigned char c = static_cast<unsigned char>(ch);
    const bool keep = c >= 0x80 || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
                      (c >= 'A' && c <= 'Z');
    if (!keep) {
      pending_space = !out.empty();
      continue;
    }
    if (pending_space) out += ' ';
    pending_space = false;
    out += (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : ch;
  }
  return out;
}

std::string collapse_spaces(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  bool pending_space = false;
  for (char c : text) {
    if (is_space(c)) {
      pending_space = !out.empty();
      continue;
    }
    if (pending_space) out += ' ';
    pending_space = false;
    out += c;
  }
  return out;
}

std::uint64_t order_key(std::string_view stream, std::string_view id) {
  return random_key({kSeed, fnv1a(stream), fnv1a(id)});
}

SplitSizes split_sizes(std::size_t n) {
  const std::size_t test = (n * 2 + 5) / 10;  // 20%, rounded
  const std::size_t val = (n + 5) / 10;       // 10%, rounded
  return {n - val - test, val, test};
}

}  // namespace sparc::prepare
