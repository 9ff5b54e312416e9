// The checks a checkpoint file passes before libhdf5 parses it (the library
// itself can crash on damaged files), on bytes alone: no LibTorch, no HDF5,
// no OpenSSL, so the fuzz build links it (tests/fuzz/fuzz_checkpoint.cpp).
// CheckpointDir (checkpoint.h) reads the files and computes the SHA-256.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace sparc {

// The digest recorded in a checksum file NAME.h5.sha256, in sha256sum's
// format: one line "<64 hex digits>  <file name>" (or " *<name>"), or the
// digest alone; a final newline (CRLF too) is optional. Returns the digest
// in lowercase. Throws InputError(where, why) for anything else: a short or
// non-hex digest, a missing name after the separator, a second line.
std::string parse_checksum_file(std::string_view text, const std::string& where);

// Bytes of the header that check_hdf5_header reads at most.
inline constexpr std::size_t kHdf5HeaderBytes = 256;

// "" when `head` (the first bytes of a file of `file_size` bytes) starts
// with an HDF5 superblock that sparc's writer produces and whose
// end-of-file address fits in the file; else why not ("not an HDF5 file",
// "truncated: ..."). The superblock is expected at offset 0 (sparc writes
// no user block); versions 0-3, offsets and lengths of 2, 4 or 8 bytes.
std::string check_hdf5_header(const std::uint8_t* head, std::size_t head_size,
                              std::uint64_t file_size);

}  // namespace sparc
