// SentencePiece tokenizer.model: the hand-written protobuf reader and the
// model checks; then encoding and decoding.
#include "fuzz_target.h"
#include "tokenizer/sentencepiece_tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto bytes = sparc::fuzz::as_text(data, size);
  try {
    auto tok = sparc::SentencePieceTokenizer::from_bytes(bytes, "fuzz-tokenizer.model");
    sparc::fuzz::exercise_tokenizer(tok, bytes.substr(0, 256));
  } catch (const sparc::InputError&) {
  }
  return 0;
}
