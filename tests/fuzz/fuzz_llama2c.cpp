// llama2.c checkpoints (.bin): the header and the file size against it. Every
// tensor of an accepted layout must lie inside the file.
#include "formats/llama2c.h"
#include "fuzz_target.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    sparc::Llama2cLayout l = sparc::parse_llama2c(data, size, "fuzz.bin");
    const auto& h = l.header;
    SPARC_FUZZ_CHECK(h.dim > 0 && h.n_heads > 0 && h.n_layers > 0 && h.vocab_size > 0);
    for (const auto& [name, t] : l.tensors) {
      std::uint64_t n = 1;
      for (auto d : t.shape) {
        SPARC_FUZZ_CHECK(d >= 0);
        n *= std::uint64_t(d);
      }
      SPARC_FUZZ_CHECK(t.offset <= size && n * 4 <= size - t.offset);
    }
  } catch (const sparc::InputError&) {
  }
  return 0;
}
