#include "tokenizer/unigram_model.h"

#include <algorithm>
#include <cfloat>

namespace sparc {

namespace {

constexpr float kUnknownPenalty = 10.0f;  // SentencePiece's kUnkPenalty

// The byte length of the UTF-8 character at s[0], 1 for a stray byte (the
// SentencePiece normalizer has already replaced invalid UTF-8 with U+FFFD).
std::size_t char_length(std::string_view s) {
  const auto c = static_cast<unsigned char>(s[0]);
  const std::size_t n = c < 0xC0 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
  return std::min(n, s.size());
}

}  // namespace

UnigramModel::UnigramModel(Vocabulary vocab) : vocab_(std::move(vocab)) {
  min_score_ = FLT_MAX;
  max_score_ = FLT_MIN;  // sic: SentencePiece starts from the smallest positive float
  bool any_normal = false;
  for (std::size_t id = 0; id < vocab_.pieces.size(); ++id) {
    if (vocab_.uses[id] == Use::kNone) continue;
    if (vocab_.uses[id] == Use::kNormal) {
      any_normal = true;
      min_score_ = std::min(min_score_, vocab_.scores[id]);
      max_score_ = std::max(max_score_, vocab_.scores[id]);
    }
    // The first id of a repeated piece wins, as in SentencePiece's map.
    ids_.emplace(vocab_.pieces[id], static_cast<std::int32_t>(id));
    max_length_ = std::max(max_length_, vocab_.pieces[id].size());
  }
  if (!any_normal) min_score_ = 0;
}

std::vector<std::int32_t> UnigramModel::encode(std::string_view text) const {
  struct Node {
    float score = 0;
    std::int64_t start = -1;  // where the best piece ending here starts; -1: none yet
    std::int32_t id = 0;
  };
  const std::size_t n = text.size();
  std::vector<Node> best(n + 1);
  best[0].start = 0;
  const float unknown_score = min_score_ - kUnknownPenalty;
  auto offer = [&](std::size_t from, std::size_t to, float score, std::int32_t id) {
    Node& target = best[to];
    const float candidate = best[from].score + score;
    if (target.start < 0 || candidate > target.score)
      target = {candidate, static_cast<std::int64_t>(from), id};
  };
  for (std::size_t pos = 0; pos < n;) {
    const std::size_t char_len = char_length(text.substr(pos));
    bool single = false;  // a piece covers exactly this character
    for (std::size_t len = 1; len <= max_length_ && pos + len <= n; ++len) {
      auto it = ids_.find(text.substr(pos, len));
      if (it == ids_.end()) continue;
      const std::int32_t id = it->second;
      const float score = vocab_.uses[id] == Use::kUserDefined
                              ? static_cast<float>(len) * max_score_ - 0.1f
                              : vocab_.scores[id];
      offer(pos, pos + len, score, id);
      if (len == char_len) single = true;
    }
    if (!single) offer(pos, pos + char_len, unknown_score, vocab_.unk_id);
    pos += char_len;
  }

  std::vector<std::int32_t> reversed;
  bool after_unknown = false;  // the piece after this one (in text order) is a fused unk
  for (std::size_t end = n; end > 0;) {
    const Node& node = best[end];
    const auto start = static_cast<std::size_t>(node.start);
    if (node.id != vocab_.unk_id) {
      reversed.push_back(node.id);
      after_unknown = false;
    } else if (vocab_.byte_fallback) {  // one character, its bytes in reverse
      for (std::size_t i = end; i-- > start;) {
        const std::int32_t id = vocab_.byte_ids[static_cast<unsigned char>(text[i])];
        reversed.push_back(id >= 0 ? id : vocab_.unk_id);
      }
      after_unknown = false;
    } else if (!after_unknown) {
      reversed.push_back(vocab_.unk_id);
      after_unknown = true;
    }
    end = start;
  }
  return {reversed.rbegin(), reversed.rend()};
}

}  // namespace sparc
