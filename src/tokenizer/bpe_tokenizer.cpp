#include "tokenizer/bpe_tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <cstdio>
#include <limits>
#include <nlohmann/json.hpp>
#include <queue>

#include "core/error.h"
#include "core/file.h"

namespace sparc {

using nlohmann::json;

namespace {

// GPT-2's pre-tokenizer: contractions, letter runs, digit runs, other symbols,
// each with one optional leading space; whitespace before a word stays with it.
constexpr const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

// Guards allocations against absurd ids in a malformed file; real vocabularies
// stay below 300k.
constexpr std::int64_t kMaxId = (1 << 24) - 1;

// The length of the valid UTF-8 sequence (RFC 3629: no overlongs, surrogates
// or code points above U+10FFFF, as PCRE2 requires) starting at s[i], or 0.
std::size_t utf8_length(std::string_view s, std::size_t i) {
  auto at = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char b = at(i);
  if (b < 0x80) return 1;
  std::size_t n;
  unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (b >= 0xC2 && b <= 0xDF) {
    n = 2;
  } else if (b >= 0xE0 && b <= 0xEF) {
    n = 3;
    if (b == 0xE0) lo = 0xA0;
    if (b == 0xED) hi = 0x9F;
  } else if (b >= 0xF0 && b <= 0xF4) {
    n = 4;
    if (b == 0xF0) lo = 0x90;
    if (b == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  if (s.size() - i < n || at(i + 1) < lo || at(i + 1) > hi) return 0;
  for (std::size_t k = 2; k < n; ++k)
    if ((at(i + k) & 0xC0) != 0x80) return 0;
  return n;
}

void append_utf8(std::string& out, char32_t c) {
  if (c < 0x80) {
    out += static_cast<char>(c);
  } else if (c < 0x800) {
    out += static_cast<char>(0xC0 | (c >> 6));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else {  // the byte map stays far below U+10000
    out += static_cast<char>(0xE0 | (c >> 12));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  }
}

// GPT-2's byte-to-unicode map: bytes that are printable Latin-1 characters
// stand for themselves; the others (controls, space, DEL, NBSP, soft hyphen)
// are moved, in byte order, to U+0100 onwards, so every token is printable.
struct ByteMap {
  std::array<std::string, 256> chars;     // byte -> its character in UTF-8
  std::array<std::int16_t, 512> byte_of;  // character -> byte, or -1

  ByteMap() {
    byte_of.fill(-1);
    char32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
      char32_t c = printable ? static_cast<char32_t>(b) : next++;
      append_utf8(chars[b], c);
      byte_of[c] = static_cast<std::int16_t>(b);
    }
  }

  // The bytes a token spells, or nullopt when it holds a character outside
  // the map (then Hugging Face decodes the token's text as it is).
  std::optional<std::string> decode(std::string_view piece) const {
    std::string out;
    for (std::size_t i = 0; i < piece.size();) {
      std::size_t n = utf8_length(piece, i);
      if (n == 0 || n > 2) return std::nullopt;  // the map's characters are < U+0800
      char32_t c = n == 1 ? static_cast<unsigned char>(piece[i])
                          : ((piece[i] & 0x1F) << 6) | (piece[i + 1] & 0x3F);
      if (c >= byte_of.size() || byte_of[c] < 0) return std::nullopt;
      out += static_cast<char>(byte_of[c]);
      i += n;
    }
    return out;
  }
};

const ByteMap& byte_map() {
  static const ByteMap map;
  return map;
}

std::uint64_t pair_key(std::int32_t left, std::int32_t right) {
  return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(left)) << 32) |
         static_cast<std::uint32_t>(right);
}

bool is_ascii_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}
}  // namespace

// ---- Pre-tokenizer regexes -----------------------------------------------------

struct BpeTokenizer::Regex {
  struct CodeFree {
    void operator()(pcre2_code* c) const { pcre2_code_free(c); }
  };
  struct MatchDataFree {
    void operator()(pcre2_match_data* m) const { pcre2_match_data_free(m); }
  };
  std::unique_ptr<pcre2_code, CodeFree> code;
  std::string pattern;

  // UTF + UCP: \p{L}, \s and (?i) follow Unicode, as in Hugging Face's engine.
  // `literal`: a Split pre-tokenizer's String pattern, matched as it is
  // (PCRE2 rejects UCP alongside LITERAL; it has no classes to affect).
  Regex(const std::string& source, bool literal, const std::string& file) : pattern(source) {
    int error = 0;
    PCRE2_SIZE offset = 0;
    code.reset(pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                             PCRE2_UTF | (literal ? PCRE2_LITERAL : PCRE2_UCP), &error, &offset,
                             nullptr));
    if (!code)
      throw InputError(file, "pre-tokenizer pattern '" + pattern + "' does not compile: " +
                                 message(error) + " at offset " + std::to_string(offset));
    pcre2_jit_compile(code.get(), PCRE2_JIT_COMPLETE);  // on failure the interpreter runs
  }

  static std::string message(int error) {
    PCRE2_UCHAR buf[256];
    pcre2_get_error_message(error, buf, sizeof buf);
    return reinterpret_cast<const char*>(buf);
  }

  // Hugging Face's "Isolated" split: every match is a piece and so is every
  // stretch of text between matches; "MergedWithPrevious": a match ends the
  // piece that holds the text before it. `text` must be valid UTF-8.
  template <typename Emit>
  void split(std::string_view text, bool merged_with_previous, Emit&& emit) const {
    std::unique_ptr<pcre2_match_data, MatchDataFree> match(
        pcre2_match_data_create_from_pattern(code.get(), nullptr));
    if (!match) throw std::bad_alloc();
    std::size_t start = 0, gap = 0;  // next search position; start of unmatched text
    while (start < text.size()) {
      int rc = pcre2_match(code.get(), reinterpret_cast<PCRE2_SPTR>(text.data()), text.size(),
                           start, PCRE2_NO_UTF_CHECK, match.get(), nullptr);
      if (rc == PCRE2_ERROR_NOMATCH) break;
      if (rc < 0)  // resource limits only: the pattern compiled and the text is valid
        throw std::runtime_error("pre-tokenizer pattern '" + pattern + "': " + message(rc));
      const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(match.get());
      if (ov[1] <= ov[0]) {  // an empty match is no piece: search again one character on
        start = std::max<std::size_t>(ov[0], start) + 1;
        while (start < text.size() && (text[start] & 0xC0) == 0x80) ++start;
        continue;
      }
      if (merged_with_previous) {
        emit(text.substr(gap, ov[1] - gap));
      } else {
        if (ov[0] > gap) emit(text.substr(gap, ov[0] - gap));
        emit(text.substr(ov[0], ov[1] - ov[0]));
      }
      gap = start = ov[1];
    }
    if (gap < text.size()) emit(text.substr(gap));
  }
};

// Flattens the pre-tokenizer into regex stages. ByteLevel must come last: the
// stages run on the raw text, which is what earlier stages see.
void BpeTokenizer::add_pre_tokenizer(const json& p) {
  if (p.is_null()) return;
  const std::string type = p.at("type").get<std::string>();
  if (byte_level_)
    throw InputError(name_,
                     "pre-tokenizer " + type + " follows ByteLevel; expected ByteLevel last");
  auto add = [&](const std::string& pattern, bool literal, bool merged) {
    splitters_.push_back({std::make_shared<Regex>(pattern, literal, name_), merged});
  };
  if (type == "Sequence") {
    for (const json& q : p.at("pretokenizers")) add_pre_tokenizer(q);
  } else if (type == "ByteLevel") {
    if (metaspace_) throw InputError(name_, "pre-tokenizer ByteLevel follows Metaspace");
    if (p.value("add_prefix_space", false))
      throw InputError(name_,
                       "ByteLevel add_prefix_space=true is not supported (decode could "
                       "not restore the text)");
    if (p.value("use_regex", true)) add(kGpt2Pattern, false, false);
    byte_level_ = true;
  } else if (type == "Split") {
    const std::string behavior = p.value("behavior", "");
    if ((behavior != "Isolated" && behavior != "MergedWithPrevious") || p.value("invert", false))
      throw InputError(name_, "Split pre-tokenizer with behavior '" + behavior + "' (invert " +
                                  (p.value("invert", false) ? "true" : "false") +
                                  ") is not supported; expected \"Isolated\" or "
                                  "\"MergedWithPrevious\", not inverted");
    const json& pattern = p.at("pattern");
    bool literal = !pattern.contains("Regex");
    add(pattern.at(literal ? "String" : "Regex").get<std::string>(), literal,
        behavior == "MergedWithPrevious");
  } else if (type == "Metaspace") {
    if (!splitters_.empty() || byte_level_ || metaspace_ || p.value("split", true))
      throw InputError(name_,
                       "Metaspace pre-tokenizer is supported first and with \"split\": false "
                       "only");
    const std::string scheme = p.contains("prepend_scheme") ? p["prepend_scheme"].get<std::string>()
                               : p.value("add_prefix_space", true) ? "always"
                                                                   : "never";
    if (scheme != "always" && scheme != "first" && scheme != "never")
      throw InputError(
          name_, "Metaspace prepend_scheme '" + scheme + "'; expected always, first or never");
    metaspace_ = Metaspace{p.value("replacement", std::string("\u2581")), scheme == "always",
                           scheme == "first"};
  } else if (type == "Digits") {
    // Hugging Face isolates ASCII digits: each one, or each run of them.
    add(p.value("individual_digits", false) ? "[0-9]" : "[0-9]+", false, false);
  } else {
    throw InputError(name_, "pre-tokenizer " + type +
                                " is not supported; expected ByteLevel, Split, Digits, "
                                "Metaspace or a Sequence of them");
  }
}

// ---- Loading --------------------------------------------------------------------

void BpeTokenizer::add_vocab_entry(const std::string& piece, std::int64_t id) {
  if (id < 0 || id > kMaxId)
    throw InputError(name_, "token '" + piece + "' has id " + std::to_string(id) +
                                "; expected 0.." + std::to_string(kMaxId));
  if (static_cast<std::size_t>(id) >= pieces_.size()) {
    pieces_.resize(id + 1);
    kinds_.resize(id + 1, Kind::kUnused);
  }
  if (kinds_[id] != Kind::kUnused)
    throw InputError(name_, "id " + std::to_string(id) + " is given to both '" + pieces_[id] +
                                "' and '" + piece + "'");
  pieces_[id] = piece;
  kinds_[id] = Kind::kModel;
  vocab_.emplace(piece, static_cast<std::int32_t>(id));
}

void BpeTokenizer::add_token(const std::string& content, std::int64_t id, bool special, bool lstrip,
                             bool rstrip) {
  if (id < 0 || id > kMaxId)
    throw InputError(name_, "added token '" + content + "' has id " + std::to_string(id) +
                                "; expected 0.." + std::to_string(kMaxId));
  if (static_cast<std::size_t>(id) >= pieces_.size()) {
    pieces_.resize(id + 1);
    kinds_.resize(id + 1, Kind::kUnused);
  }
  // An added token may repeat a vocabulary entry (GPT-2's <|endoftext|>); it
  // then takes over that id, as in Hugging Face.
  pieces_[id] = content;
  kinds_[id] = special ? Kind::kSpecial : Kind::kAdded;
  if (!content.empty()) added_.push_back({content, static_cast<std::int32_t>(id), lstrip, rstrip});
}

void BpeTokenizer::add_merge(const std::string& left, const std::string& right, std::int32_t rank,
                             const std::string& file, const std::string& where) {
  auto find = [&](const std::string& piece) {
    auto it = vocab_.find(piece);
    if (it == vocab_.end())
      throw InputError(file, where + " ('" + left + " " + right + "'): token '" + piece +
                                 "' is not in the vocabulary");
    return it->second;
  };
  const std::int32_t left_id = find(left), right_id = find(right), merged_id = find(left + right);
  // A repeated pair takes its last rank, as in Hugging Face and GPT-2's encoder.py.
  merges_[pair_key(left_id, right_id)] = Merge{rank, merged_id};
}

std::optional<std::int32_t> BpeTokenizer::find_id(const std::string& content) const {
  for (const AddedToken& a : added_)
    if (a.content == content) return a.id;
  if (auto it = vocab_.find(content); it != vocab_.end()) return it->second;
  return std::nullopt;
}

void BpeTokenizer::finish() {
  const ByteMap& map = byte_map();
  for (int b = 0; b < 256; ++b) {
    char hex[8];
    std::snprintf(hex, sizeof hex, "0x%02X", b);
    if (!byte_level_) {  // SentencePiece-style: the <0xNN> piece, if any
      auto it = vocab_.find(std::string("<") + hex + ">");
      byte_ids_[b] = byte_fallback_ && it != vocab_.end() ? it->second : -1;
      continue;
    }
    auto it = vocab_.find(map.chars[b]);
    if (it == vocab_.end())
      throw InputError(name_, std::string("has no token for byte ") + hex + " ('" + map.chars[b] +
                                  "'); byte-level BPE needs all 256 byte tokens");
    byte_ids_[b] = it->second;
  }
  bytes_.assign(pieces_.size(), std::string());
  for (std::size_t id = 0; id < pieces_.size(); ++id) {
    if (kinds_[id] == Kind::kUnused || kinds_[id] == Kind::kSpecial) continue;
    if (byte_level_) {  // added tokens are matched as raw text, so decoded as such
      bytes_[id] =
          kinds_[id] == Kind::kModel ? map.decode(pieces_[id]).value_or(pieces_[id]) : pieces_[id];
      continue;
    }
    // SentencePiece-style: the decoder's steps, as Hugging Face runs them on every token.
    std::string text = pieces_[id];
    for (const auto& [from, to] : decode_replace_) {
      std::string out;
      for (std::size_t pos = 0;;) {
        const std::size_t hit = text.find(from, pos);
        out.append(text, pos, hit == std::string::npos ? std::string::npos : hit - pos);
        if (hit == std::string::npos) break;
        out += to;
        pos = hit + from.size();
      }
      text = std::move(out);
    }
    unsigned byte = 0;
    char close = 0;
    if (decode_byte_fallback_ && text.size() == 6 &&
        std::sscanf(text.c_str(), "<0x%2X%c", &byte, &close) == 2 && close == '>')
      text = std::string(1, static_cast<char>(byte));
    bytes_[id] = std::move(text);
  }
  // Longest first, so a scan takes the longest token at each position.
  std::stable_sort(added_.begin(), added_.end(), [](const AddedToken& a, const AddedToken& b) {
    return a.content.size() > b.content.size();
  });
  for (const AddedToken& a : added_) starts_added_[static_cast<unsigned char>(a.content[0])] = true;
}

void BpeTokenizer::check_id(std::int32_t id) const {
  if (id < 0 || id >= vocab_size())
    throw InputError(name_, "token id " + std::to_string(id) + " is out of range; expected 0.." +
                                std::to_string(vocab_size() - 1));
  if (kinds_[id] == Kind::kUnused)
    throw InputError(name_, "token id " + std::to_string(id) + " is not assigned to any token");
}

std::string BpeTokenizer::piece(std::int32_t id) const {
  check_id(id);
  return pieces_[id];
}

// ---- Encoding -------------------------------------------------------------------

std::vector<std::int32_t> BpeTokenizer::encode(std::string_view text) const {
  std::vector<std::int32_t> ids;
  std::size_t plain = 0;  // start of the text not yet encoded
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (!starts_added_[static_cast<unsigned char>(text[i])]) continue;
    auto it = std::find_if(added_.begin(), added_.end(), [&](const AddedToken& a) {
      return text.compare(i, a.content.size(), a.content) == 0;
    });
    if (it == added_.end()) continue;
    std::size_t begin = i, end = i + it->content.size();
    if (it->lstrip)
      while (begin > plain && is_ascii_space(text[begin - 1])) --begin;
    if (it->rstrip)
      while (end < text.size() && is_ascii_space(text[end])) ++end;
    encode_text(text.substr(plain, begin - plain), plain == 0, ids);
    ids.push_back(it->id);
    plain = end;
    i = end - 1;
  }
  encode_text(text.substr(plain), plain == 0, ids);
  return ids;
}

// The text between added tokens is normalized, then, since PCRE2 must only
// see valid UTF-8 (it is told not to check), cut into valid runs,
// pre-tokenized as usual, and runs of invalid bytes, each encoded as one piece.
void BpeTokenizer::encode_text(std::string_view raw, bool first,
                               std::vector<std::int32_t>& ids) const {
  std::string normalized;
  std::string_view text = raw;
  if (!normalizer_.empty() && !raw.empty()) text = normalized = normalizer_.apply(raw);
  if (metaspace_ && !text.empty()) {
    std::string spaced;
    for (char c : text) c == ' ' ? spaced += metaspace_->replacement : spaced += c;
    if ((metaspace_->prepend_always || (metaspace_->prepend_first && first)) &&
        spaced.compare(0, metaspace_->replacement.size(), metaspace_->replacement) != 0)
      spaced.insert(0, metaspace_->replacement);
    text = normalized = std::move(spaced);
  }
  for (std::size_t i = 0; i < text.size();) {
    std::size_t valid_end = i, n;
    while (valid_end < text.size() && (n = utf8_length(text, valid_end)) > 0) valid_end += n;
    if (valid_end > i) pre_tokenize(text.substr(i, valid_end - i), 0, ids);
    std::size_t invalid_end = valid_end;
    while (invalid_end < text.size() && utf8_length(text, invalid_end) == 0) ++invalid_end;
    if (invalid_end > valid_end) encode_piece(text.substr(valid_end, invalid_end - valid_end), ids);
    i = invalid_end;
  }
}

void BpeTokenizer::pre_tokenize(std::string_view text, std::size_t stage,
                                std::vector<std::int32_t>& ids) const {
  if (stage == splitters_.size()) {
    encode_piece(text, ids);
    return;
  }
  splitters_[stage].regex->split(
      text, splitters_[stage].merged_with_previous,
      [&](std::string_view piece) { pre_tokenize(piece, stage + 1, ids); });
}

void BpeTokenizer::encode_piece(std::string_view piece, std::vector<std::int32_t>& ids) const {
  if (ignore_merges_) {  // a piece that is a token is taken whole
    std::string word;
    if (byte_level_)
      for (char c : piece) word += byte_map().chars[static_cast<unsigned char>(c)];
    else
      word = piece;
    if (auto it = vocab_.find(word); it != vocab_.end()) {
      ids.push_back(it->second);
      return;
    }
  }
  std::vector<std::int32_t> word;
  if (byte_level_) {
    word.resize(piece.size());
    for (std::size_t i = 0; i < piece.size(); ++i)
      word[i] = byte_ids_[static_cast<unsigned char>(piece[i])];
  } else {
    char_symbols(piece, word);
  }
  merge(word);
  ids.insert(ids.end(), word.begin(), word.end());
}

// Hugging Face's BPE without ByteLevel: each character's token, else its
// bytes' <0xNN> tokens when all exist, else unk (consecutive ones fused into
// one when fuse_unk); with no unk_token the character is dropped. An invalid
// UTF-8 byte (which Hugging Face never sees) is a character of its own.
void BpeTokenizer::char_symbols(std::string_view piece, std::vector<std::int32_t>& word) const {
  bool after_unk = false;
  std::string c;
  for (std::size_t i = 0; i < piece.size();) {
    const std::size_t n = std::max<std::size_t>(utf8_length(piece, i), 1);
    c.assign(piece.substr(i, n));
    i += n;
    if (auto it = vocab_.find(c); it != vocab_.end()) {
      word.push_back(it->second);
      after_unk = false;
      continue;
    }
    if (std::all_of(c.begin(), c.end(),
                    [&](char b) { return byte_ids_[static_cast<unsigned char>(b)] >= 0; })) {
      for (char b : c) word.push_back(byte_ids_[static_cast<unsigned char>(b)]);
      after_unk = false;
      continue;
    }
    if (!unk_) continue;
    if (!(fuse_unk_ && after_unk)) word.push_back(*unk_);
    after_unk = true;
  }
}

// Applies the lowest-ranked merge among adjacent pairs, the leftmost on ties,
// until none applies, as Hugging Face does: a heap of candidate pairs over a
// linked list of tokens, dropping candidates whose tokens have changed.
void BpeTokenizer::merge(std::vector<std::int32_t>& word) const {
  const auto n = static_cast<std::int32_t>(word.size());
  if (n < 2) return;
  struct Candidate {
    std::int32_t rank;
    std::int32_t left, right;  // positions in `word`
    std::int32_t left_id, right_id, merged_id;
  };
  auto later = [](const Candidate& a, const Candidate& b) {
    return a.rank != b.rank ? a.rank > b.rank : a.left > b.left;
  };
  std::priority_queue<Candidate, std::vector<Candidate>, decltype(later)> heap(later);
  std::vector<std::int32_t> next(n), prev(n);
  for (std::int32_t i = 0; i < n; ++i) {
    next[i] = i + 1;  // n: none
    prev[i] = i - 1;  // -1: none
  }
  auto consider = [&](std::int32_t left, std::int32_t right) {
    if (left < 0 || right >= n) return;
    auto it = merges_.find(pair_key(word[left], word[right]));
    if (it != merges_.end())
      heap.push({it->second.rank, left, right, word[left], word[right], it->second.id});
  };
  for (std::int32_t i = 0; i + 1 < n; ++i) consider(i, i + 1);

  constexpr std::int32_t kRemoved = -1;
  while (!heap.empty()) {
    Candidate c = heap.top();
    heap.pop();
    if (word[c.left] != c.left_id || next[c.left] != c.right || word[c.right] != c.right_id)
      continue;  // stale: one side has merged since this pair was seen
    word[c.left] = c.merged_id;
    word[c.right] = kRemoved;
    next[c.left] = next[c.right];
    if (next[c.left] < n) prev[next[c.left]] = c.left;
    consider(prev[c.left], c.left);
    consider(c.left, next[c.left]);
  }
  word.erase(std::remove(word.begin(), word.end(), kRemoved), word.end());
}

// ---- Decoding -------------------------------------------------------------------

std::string BpeTokenizer::decode(const std::vector<std::int32_t>& ids) const {
  std::string text;
  for (std::int32_t id : ids) {
    check_id(id);
    text += bytes_[id];
  }
  // A Strip decoder (after Fuse: on the whole text) drops leading spaces.
  std::size_t strip = 0;
  while (strip < decode_strip_ && strip < text.size() && text[strip] == ' ') ++strip;
  return text.substr(strip);
}

}  // namespace sparc
