#include "ckpt/verify.h"

#include <cstring>

#include "core/error.h"

namespace sparc {
namespace {

bool is_hex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

// Little-endian unsigned of `n` bytes at `p` (n <= 8).
std::uint64_t le(const std::uint8_t* p, std::size_t n) {
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < n; ++i) v |= std::uint64_t(p[i]) << (8 * i);
  return v;
}

std::string number(std::uint64_t v) { return std::to_string(v); }

}  // namespace

std::string parse_checksum_file(std::string_view text, const std::string& where) {
  std::string_view line = text;
  const auto nl = text.find('\n');
  if (nl != std::string_view::npos) {
    line = text.substr(0, nl);
    if (nl + 1 != text.size())
      throw InputError(where, "more than one line: expected one \"<SHA-256>  <file name>\" line");
  }
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  if (line.size() < 64)
    throw InputError(where, "holds " + std::to_string(line.size()) +
                                " characters on its line: expected a SHA-256 of 64 hex digits");
  std::string digest;
  for (std::size_t i = 0; i < 64; ++i) {
    const char c = line[i];
    if (!is_hex(c))
      throw InputError(where, "character " + std::to_string(i + 1) +
                                  " of the SHA-256 is not a hex digit: expected 64 hex digits");
    digest += (c >= 'A' && c <= 'F') ? char(c - 'A' + 'a') : c;
  }
  const std::string_view rest = line.substr(64);
  if (!rest.empty() && (rest.size() < 3 || rest[0] != ' ' || (rest[1] != ' ' && rest[1] != '*')))
    throw InputError(where, "expected two spaces and a file name after the SHA-256 (sha256sum's format)");
  return digest;
}

std::string check_hdf5_header(const std::uint8_t* head, std::size_t head_size, std::uint64_t file_size) {
  static const std::uint8_t kSignature[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
  if (head_size > file_size) head_size = std::size_t(file_size);
  if (head_size < 8 || std::memcmp(head, kSignature, 8) != 0)
    return "not an HDF5 file (no HDF5 signature at its start)";
  if (head_size < 16) return "truncated: " + number(file_size) + " bytes end inside the HDF5 superblock";
  const unsigned version = head[8];
  std::size_t offsets = 0, lengths = 0, base_at = 0;
  switch (version) {
    case 0:
    case 1:
      offsets = head[13];
      lengths = head[14];
      base_at = version == 0 ? 24 : 28;
      break;
    case 2:
    case 3:
      offsets = head[9];
      lengths = head[10];
      base_at = 12;
      break;
    default:
      return "HDF5 superblock version " + number(version) + " is not one sparc writes (0 to 3)";
  }
  auto valid_size = [](std::size_t n) { return n == 2 || n == 4 || n == 8; };
  if (!valid_size(offsets) || !valid_size(lengths))
    return "HDF5 superblock gives sizes of " + number(offsets) + "-byte offsets and " +
           number(lengths) + "-byte lengths (expected 2, 4 or 8)";
  // Base address, then (v0/1) free-space address or (v2/3) extension
  // address, then the end-of-file address.
  const std::size_t eof_at = base_at + 2 * offsets;
  if (head_size < eof_at + offsets)
    return "truncated: " + number(file_size) + " bytes end inside the HDF5 superblock";
  const std::uint64_t base = le(head + base_at, offsets);
  const std::uint64_t eof = le(head + eof_at, offsets);
  if (base != 0) return "HDF5 base address " + number(base) + ", expected 0 (no user block)";
  if (eof > file_size)
    return "truncated: its HDF5 superblock says " + number(eof) + " bytes, the file has " +
           number(file_size);
  return "";
}

}  // namespace sparc
