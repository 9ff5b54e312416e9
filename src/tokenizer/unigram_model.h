// SentencePiece's unigram encoding (unigram_model.cc, the "optimized"
// encoder of SentencePiece 0.1.9x): the segmentation of the normalized text
// that maximizes the sum of its pieces' scores, by Viterbi over the text's
// byte positions. A user-defined piece scores length_in_bytes * max_score -
// 0.1, where max_score is the highest NORMAL score but at least FLT_MIN (as
// SentencePiece initializes it), so it wins wherever it matches. A character
// no piece of its own length covers is unknown, scoring min_score - 10. As
// SentencePieceProcessor then does: with byte fallback an unknown character
// becomes its bytes' <0xNN> pieces (unk for a byte without one); without,
// a run of unknown characters becomes one unk. Ties keep the candidate found
// first (earlier start, then shorter piece).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace sparc {

class UnigramModel {
 public:
  enum class Use : std::uint8_t { kNone, kNormal, kUserDefined };
  struct Vocabulary {
    std::vector<std::string> pieces;  // as they appear in the normalized text
    std::vector<float> scores;
    std::vector<Use> uses;  // kNone: never matched (control, unknown, byte, unused)
    std::int32_t unk_id = 0;
    bool byte_fallback = false;
    std::array<std::int32_t, 256> byte_ids{};  // byte -> its <0xNN> piece, or -1
  };

  explicit UnigramModel(Vocabulary vocab);
  // `text` is normalized (SentencePiece's spelling: '▁' for spaces).
  std::vector<std::int32_t> encode(std::string_view text) const;

 private:
  Vocabulary vocab_;
  std::unordered_map<std::string_view, std::int32_t> ids_;  // matched pieces
  std::size_t max_length_ = 0;                              // of a matched piece, in bytes
  float min_score_ = 0, max_score_ = 0;
};

}  // namespace sparc
