// llama2.c tokenizer.bin: parsing, then encoding and decoding with whatever
// vocabulary was accepted.
#include "fuzz_target.h"
#include "tokenizer/llama2c_tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto bytes = sparc::fuzz::as_text(data, size);
  try {
    auto tok = sparc::Llama2cTokenizer::from_bytes(bytes, "fuzz-tokenizer.bin");
    sparc::fuzz::exercise_tokenizer(tok, bytes.substr(0, 256));
  } catch (const sparc::InputError&) {
  }
  return 0;
}
