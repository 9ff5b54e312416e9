// The safetensors reader's checks on a whole file: header length, JSON
// header, dtypes, shapes, offsets. A header it accepts must describe tensors
// that lie inside the data section with exactly dtype x shape bytes.
#include "formats/safetensors.h"
#include "fuzz_target.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    std::uint64_t offset = 0;
    sparc::SafetensorsHeader h = sparc::parse_safetensors_file(data, size, "fuzz.safetensors", &offset);
    SPARC_FUZZ_CHECK(offset >= 8 && offset <= size);
    const std::uint64_t data_size = size - offset;
    for (const auto& t : h.tensors) {
      SPARC_FUZZ_CHECK(t.begin <= t.end && t.end <= data_size);
      SPARC_FUZZ_CHECK(std::uint64_t(t.numel()) * sparc::dtype_size(t.dtype) == t.end - t.begin);
    }
  } catch (const sparc::InputError&) {
  }
  return 0;
}
