// The SuperGLUE readers (BoolQ, CB, RTE, COPA, WiC, WSC, MultiRC): the first
// byte picks the format, the rest is the file.
#include "data/jsonl_reader.h"
#include "fuzz_target.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const char* const kFormats[] = {"boolq", "cb", "rte", "copa", "wic", "wsc", "multirc"};
  if (size < 1) return 0;
  const char* format = kFormats[data[0] % 7];
  try {
    (void)sparc::parse_examples(sparc::fuzz::as_text(data + 1, size - 1), "fuzz.jsonl", format);
  } catch (const sparc::InputError&) {
  }
  return 0;
}
