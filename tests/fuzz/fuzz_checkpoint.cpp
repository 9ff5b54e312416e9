// The checks a checkpoint passes before libhdf5 is given it: the checksum
// file (sha256sum's format) and the HDF5 superblock. Input: the checksum
// file's text, a NUL byte, then the file: 8 bytes of its size (little
// endian) and its first bytes (at most kHdf5HeaderBytes are read). Without
// the NUL byte the whole input is the checksum file.
#include <cstring>

#include "ckpt/verify.h"
#include "fuzz_target.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto* nul = static_cast<const std::uint8_t*>(std::memchr(data, 0, size));
  const std::size_t text_size = nul ? std::size_t(nul - data) : size;
  try {
    const std::string digest =
        sparc::parse_checksum_file(sparc::fuzz::as_text(data, text_size), "fuzz.h5.sha256");
    SPARC_FUZZ_CHECK(digest.size() == 64);
    for (char c : digest) SPARC_FUZZ_CHECK((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'));
    // What the writer records for this digest reads back as the same digest.
    SPARC_FUZZ_CHECK(sparc::parse_checksum_file(digest + "  ckpt-00000001.h5\n", "again") == digest);
  } catch (const sparc::InputError&) {
  }
  if (nul == nullptr) return 0;
  const std::uint8_t* file = nul + 1;
  std::size_t file_bytes = size - text_size - 1;
  std::uint64_t file_size = file_bytes;
  if (file_bytes >= 8) {
    std::memcpy(&file_size, file, 8);
    file += 8;
    file_bytes -= 8;
  }
  const std::size_t head = file_bytes < sparc::kHdf5HeaderBytes ? file_bytes : sparc::kHdf5HeaderBytes;
  const std::string why = sparc::check_hdf5_header(file, head, file_size);
  // Accepted only with the signature in place, in a file long enough for it.
  if (why.empty()) SPARC_FUZZ_CHECK(head >= 16 && file_size >= 16 && file[0] == 0x89 && file[1] == 'H');
  return 0;
}
