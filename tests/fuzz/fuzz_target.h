// What every fuzz target shares. A parser given any bytes must either return
// a value or throw InputError (which the CLI turns into exit code 2); any
// other exception, a crash, a sanitizer report, a hang or an unbounded
// allocation is a bug that libFuzzer reports.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "tokenizer/tokenizer.h"

namespace sparc::fuzz {

inline std::string_view as_text(const std::uint8_t* data, std::size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// A property the parser promised does not hold: abort, so libFuzzer keeps the input.
#define SPARC_FUZZ_CHECK(cond)                                          \
  do {                                                                  \
    if (!(cond)) {                                                      \
      __builtin_fprintf(stderr, "fuzz property failed: %s\n", #cond);   \
      std::abort();                                                     \
    }                                                                   \
  } while (0)

// Runs a loaded tokenizer over fixed text and over `text` (arbitrary bytes),
// decodes what it produced and every id of a prefix of the vocabulary: a
// malformed vocabulary must not make later use crash. Out-of-range ids
// must be refused with InputError.
inline void exercise_tokenizer(const Tokenizer& tok, std::string_view text) {
  SPARC_FUZZ_CHECK(tok.vocab_size() >= 0);
  for (std::string_view s : {std::string_view("Hello, world! \xc3\xbcn\xc3\xaf 123\n\t  x"), text}) {
    try {
      std::vector<std::int32_t> ids = tok.encode_with_bos(s);
      for (std::int32_t id : ids) SPARC_FUZZ_CHECK(id >= 0 && id < tok.vocab_size());
      (void)tok.decode(ids);
    } catch (const InputError&) {
    }
  }
  const std::int32_t n = tok.vocab_size() < 512 ? tok.vocab_size() : 512;
  for (std::int32_t id = 0; id < n; ++id) {
    try {
      (void)tok.piece(id);
      (void)tok.decode({id});
    } catch (const InputError&) {
    }
  }
  try {
    (void)tok.decode({tok.vocab_size()});
  } catch (const InputError&) {
  }
}

}  // namespace sparc::fuzz
