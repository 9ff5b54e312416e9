// The generic JSON Lines task reader.
#include "data/jsonl_reader.h"
#include "fuzz_target.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    auto examples = sparc::parse_examples(sparc::fuzz::as_text(data, size), "fuzz.jsonl", "generic");
    SPARC_FUZZ_CHECK(!examples.empty());  // an empty file is an InputError
  } catch (const sparc::InputError&) {
  }
  return 0;
}
