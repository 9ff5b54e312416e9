// Counter-based random numbers: every draw is a pure function of a key
// (seed, stream, counter...), so results never depend on how work is spread
// over ranks or on where a run was restarted. No hidden generator state.
#pragma once

#include <cstdint>
#include <initializer_list>

namespace sparc {

// SplitMix64's finaliser: a bijective mix of 64 bits with full avalanche.
inline std::uint64_t mix64(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// Hashes a sequence of 64-bit words into one key.
inline std::uint64_t random_key(std::initializer_list<std::uint64_t> words) {
  std::uint64_t h = 0x243f6a8885a308d3ULL;  // fractional digits of pi: an arbitrary start
  for (std::uint64_t w : words) h = mix64(h ^ mix64(w));
  return h;
}

// A uniform double in [0, 1) from a key (53 random bits).
inline double uniform01(std::uint64_t key) {
  return static_cast<double>(mix64(key) >> 11) * (1.0 / 9007199254740992.0);
}

}  // namespace sparc
