#include "tokenizer/llama2c_tokenizer.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <queue>

#include "core/error.h"
#include "core/file.h"

namespace sparc {
namespace {

// Far above any real vocabulary (llama2's longest piece is 27 bytes); a larger
// header means the file is not a tokenizer.bin at all.
constexpr std::int32_t kMaxTokenLengthLimit = 1 << 16;

// llama2.c starts its search for the best merge at this score with a strict
// '>', so merges scored at or below it never happen. Kept for identical ids.
constexpr float kMinMergeScore = -1e10f;

bool is_continuation(char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// The byte of a fallback piece "<0xNN>", or -1 for any other piece.
int byte_of_piece(std::string_view p) {
  if (p.size() != 6 || p.substr(0, 3) != "<0x" || p[5] != '>') return -1;
  int hi = hex_digit(p[3]), lo = hex_digit(p[4]);
  return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

}  // namespace

Llama2cTokenizer::Llama2cTokenizer(const std::string& path) {
  name_ = path;
  MappedFile file(path);
  parse(std::string_view(reinterpret_cast<const char*>(file.data()), file.size()));
}

Llama2cTokenizer Llama2cTokenizer::from_bytes(std::string_view bytes, const std::string& name) {
  Llama2cTokenizer t;
  t.name_ = name;
  t.parse(bytes);
  return t;
}

Llama2cTokenizer Llama2cTokenizer::from_vocabulary(Vocabulary vocab, const std::string& name) {
  const std::size_t n = vocab.pieces.size();
  if (vocab.scores.size() != n || vocab.uses.size() != n)
    throw InputError(name, "vocabulary of " + std::to_string(n) + " pieces has " +
                               std::to_string(vocab.scores.size()) + " scores and " +
                               std::to_string(vocab.uses.size()) + " uses");
  if (n > static_cast<std::size_t>(std::numeric_limits<std::int32_t>::max()))
    throw InputError(name, "more tokens than an int32 id can address");
  if (vocab.unk_id < 0 || static_cast<std::size_t>(vocab.unk_id) >= n)
    throw InputError(name, "unknown-token id " + std::to_string(vocab.unk_id) +
                               " is out of range for " + std::to_string(n) + " pieces");
  Llama2cTokenizer t;
  t.name_ = name;
  t.pieces_ = std::move(vocab.pieces);
  t.scores_ = std::move(vocab.scores);
  t.uses_ = std::move(vocab.uses);
  t.unk_id_ = vocab.unk_id;
  t.byte_fallback_ = vocab.byte_fallback;
  t.dummy_prefix_ = vocab.dummy_prefix;
  std::size_t longest = 0;
  for (const auto& p : t.pieces_) longest = std::max(longest, p.size());
  t.max_token_length_ = static_cast<std::int32_t>(
      std::min<std::size_t>(longest, std::numeric_limits<std::int32_t>::max()));
  t.index();
  return t;
}

void Llama2cTokenizer::parse(std::string_view bytes) {
  const std::size_t size = bytes.size();
  std::size_t pos = 0;
  auto read4 = [&](auto& value) {  // host order: llama2.c writes raw little-endian structs
    static_assert(sizeof(value) == 4);
    std::memcpy(&value, bytes.data() + pos, 4);
    pos += 4;
  };

  if (size < 4)
    throw InputError(name_, "file of " + std::to_string(size) +
                                " bytes is too short; expected an int32 max_token_length header");
  read4(max_token_length_);
  if (max_token_length_ <= 0 || max_token_length_ > kMaxTokenLengthLimit)
    throw InputError(name_, "max_token_length is " + std::to_string(max_token_length_) +
                                "; expected 1.." + std::to_string(kMaxTokenLengthLimit) +
                                " (is this a llama2.c tokenizer.bin?)");

  // The file has no token count (llama2.c takes it from the model header): the
  // records run to the end of the file.
  while (pos < size) {
    const std::string where = "token " + std::to_string(pieces_.size()) + " at byte offset " +
                              std::to_string(pos);
    if (size - pos < 8)
      throw InputError(name_, where + " is truncated: expected a float32 score and an int32 "
                                      "length (8 bytes), found " +
                                  std::to_string(size - pos));
    float score;
    std::int32_t len;
    read4(score);
    read4(len);
    if (len < 0 || len > max_token_length_)
      throw InputError(name_, where + " has length " + std::to_string(len) + "; expected 0.." +
                                  std::to_string(max_token_length_) + " (max_token_length)");
    if (size - pos < static_cast<std::size_t>(len))
      throw InputError(name_, where + " is truncated: expected " + std::to_string(len) +
                                  " bytes of text, found " + std::to_string(size - pos));
    if (pieces_.size() == static_cast<std::size_t>(std::numeric_limits<std::int32_t>::max()))
      throw InputError(name_, "more tokens than an int32 id can address");
    pieces_.emplace_back(bytes.substr(pos, len));
    scores_.push_back(score);
    pos += len;
  }
  if (pieces_.size() < 3)
    throw InputError(name_, "has " + std::to_string(pieces_.size()) +
                                " tokens; expected at least 3 (<unk>, <s>, </s>)");

  // llama2.c looks every piece up by its text, "<0xNN>" ones included.
  uses_.resize(pieces_.size());
  for (std::size_t id = 0; id < pieces_.size(); ++id)
    uses_[id] = kFromText | (byte_of_piece(pieces_[id]) >= 0 ? kByteFallback : 0);
  index();
}

void Llama2cTokenizer::index() {
  byte_ids_.fill(unk_id_);
  std::array<bool, 256> seen{};
  byte_of_.resize(pieces_.size());
  for (std::int32_t id = 0; id < vocab_size(); ++id) {
    const std::string& p = pieces_[id];
    // emplace keeps the first id of a duplicated piece
    if (uses_[id] & kFromText) ids_.emplace(p, id);
    if ((uses_[id] & kUserDefined) && !p.empty()) user_defined_.push_back(id);
    int b = byte_of_piece(p);
    byte_of_[id] = static_cast<std::int16_t>(b);
    if (b >= 0 && (uses_[id] & kByteFallback) && !seen[b]) {
      seen[b] = true;
      byte_ids_[b] = id;
    }
  }
  std::stable_sort(user_defined_.begin(), user_defined_.end(), [&](std::int32_t a, std::int32_t b) {
    return pieces_[a].size() > pieces_[b].size();
  });
}

void Llama2cTokenizer::check_id(std::int32_t id) const {
  if (id < 0 || id >= vocab_size())
    throw InputError(name_, "token id " + std::to_string(id) + " is out of range; expected 0.." +
                                std::to_string(vocab_size() - 1));
}

std::string Llama2cTokenizer::piece(std::int32_t id) const {
  check_id(id);
  return pieces_[id];
}

float Llama2cTokenizer::score(std::int32_t id) const {
  check_id(id);
  return scores_[id];
}

void Llama2cTokenizer::push_unit(std::string_view unit, std::string& buf,
                                 std::vector<std::int32_t>& ids) const {
  buf.assign(unit);  // a reused buffer: lookups need a std::string key in C++17
  if (auto it = ids_.find(buf); it != ids_.end()) {
    ids.push_back(it->second);
    return;
  }
  // Byte fallback; a vocabulary without <0xNN> pieces gets <unk>, as SentencePiece does.
  if (!byte_fallback_) {  // SentencePiece: one <unk> for a run of missing units
    if (ids.empty() || ids.back() != unk_id_) ids.push_back(unk_id_);
    return;
  }
  for (char c : unit) ids.push_back(byte_ids_[static_cast<unsigned char>(c)]);
}

std::int32_t Llama2cTokenizer::user_defined_at(std::string_view text) const {
  for (std::int32_t id : user_defined_)
    if (text.substr(0, pieces_[id].size()) == pieces_[id]) return id;
  return -1;
}

std::vector<std::int32_t> Llama2cTokenizer::encode(std::string_view text) const {
  std::vector<std::int32_t> ids;
  if (text.empty()) return ids;
  std::string buf;
  if (dummy_prefix_) push_unit(" ", buf, ids);  // SentencePiece's; llama2.c always adds it

  // llama2.c's units: a byte plus the continuation bytes after it, at most 4
  // bytes. For valid UTF-8 that is one codepoint; stray bytes of invalid UTF-8
  // end up in units that miss the vocabulary and fall back to bytes.
  for (std::size_t i = 0; i < text.size();) {
    if (std::int32_t id = user_defined_at(text.substr(i)); id >= 0) {
      ids.push_back(id);
      i += pieces_[id].size();
      continue;
    }
    std::size_t n = 1;
    while (n < 4 && i + n < text.size() && is_continuation(text[i + n])) ++n;
    push_unit(text.substr(i, n), buf, ids);
    i += n;
  }
  merge(ids);
  return ids;
}

// llama2.c merges, one at a time, the adjacent pair whose concatenated pieces
// form the vocabulary piece with the highest score, the leftmost pair on ties.
// It rescans every pair per merge (quadratic); this gives the same merges in
// O(n log n) with a heap of candidate pairs over a linked list of tokens,
// ordered by (score, leftmost), dropping candidates whose tokens have changed.
void Llama2cTokenizer::merge(std::vector<std::int32_t>& ids) const {
  const auto n = static_cast<std::int32_t>(ids.size());
  if (n < 2) return;
  struct Candidate {
    float score;
    std::int32_t left, right;  // positions in `ids`
    std::int32_t left_id, right_id, merged_id;
  };
  auto lower = [](const Candidate& a, const Candidate& b) {
    return a.score != b.score ? a.score < b.score : a.left > b.left;
  };
  std::priority_queue<Candidate, std::vector<Candidate>, decltype(lower)> heap(lower);
  std::vector<std::int32_t> next(n), prev(n);
  for (std::int32_t i = 0; i < n; ++i) {
    next[i] = i + 1;  // n: none
    prev[i] = i - 1;  // -1: none
  }

  std::string buf;
  auto consider = [&](std::int32_t left, std::int32_t right) {
    if (left < 0 || right >= n || ((uses_[ids[left]] | uses_[ids[right]]) & kUserDefined)) return;
    buf.assign(pieces_[ids[left]]).append(pieces_[ids[right]]);
    auto it = ids_.find(buf);
    // '>' also drops NaN scores, which never win in llama2.c either.
    if (it == ids_.end() || !(scores_[it->second] > kMinMergeScore)) return;
    heap.push({scores_[it->second], left, right, ids[left], ids[right], it->second});
  };
  for (std::int32_t i = 0; i + 1 < n; ++i) consider(i, i + 1);

  constexpr std::int32_t kRemoved = -1;
  while (!heap.empty()) {
    Candidate c = heap.top();
    heap.pop();
    if (ids[c.left] != c.left_id || next[c.left] != c.right || ids[c.right] != c.right_id)
      continue;  // stale: one side has merged since this pair was seen
    ids[c.left] = c.merged_id;
    ids[c.right] = kRemoved;
    next[c.left] = next[c.right];
    if (next[c.left] < n) prev[next[c.left]] = c.left;
    consider(prev[c.left], c.left);
    consider(c.left, next[c.left]);
  }
  std::size_t out = 0;
  for (std::int32_t id : ids)
    if (id != kRemoved) ids[out++] = id;
  ids.resize(out);
}

std::string Llama2cTokenizer::decode(const std::vector<std::int32_t>& ids) const {
  std::string text;
  bool first = true;
  for (std::int32_t id : ids) {
    check_id(id);
    if (id == kUnk || id == kBos || id == kEos) continue;
    std::string_view p = pieces_[id];
    char byte;
    if (byte_of_[id] >= 0) {
      byte = static_cast<char>(byte_of_[id]);
      p = std::string_view(&byte, 1);
    }
    // The first piece carries encode()'s dummy prefix.
    if (first && !p.empty() && p[0] == ' ') p.remove_prefix(1);
    first = false;
    text.append(p);
  }
  return text;
}

}  // namespace sparc
