// Hugging Face tokenizer.json (byte-level BPE): JSON, model, merges,
// pre-tokenizer patterns, added tokens; then encoding and decoding.
#include "fuzz_target.h"
#include "tokenizer/bpe_tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto text = sparc::fuzz::as_text(data, size);
  try {
    auto tok = sparc::BpeTokenizer::from_tokenizer_json_text(text, "fuzz-tokenizer.json");
    sparc::fuzz::exercise_tokenizer(tok, text.substr(0, 256));
  } catch (const sparc::InputError&) {
  }
  return 0;
}
