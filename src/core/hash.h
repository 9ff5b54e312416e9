// A stable 64-bit hash (FNV-1a) for fingerprints that ranks compare: the
// same bytes give the same value in every process, build and host.
#pragma once

#include <cstdint>
#include <string_view>

namespace sparc {

inline std::uint64_t fnv1a(std::string_view bytes, std::uint64_t h = 0xcbf29ce484222325ULL) {
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h;
}

}  // namespace sparc
