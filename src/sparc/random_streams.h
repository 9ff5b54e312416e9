// Streams of counter-based draws (SPEC 3): one constant per purpose, mixed
// into every key with (seed, task, ...). Checkpoints record them by name.
#pragma once

#include <cstdint>

namespace sparc {

constexpr std::uint64_t kSplitStream = 0x73706c6974;  // "split": validation carved out of train
constexpr std::uint64_t kInitStream = 0x696e6974;     // "init": sampled prompt tokens
constexpr std::uint64_t kLoraStream = 0x6c6f7261;     // "lora": adapter initialisation
constexpr std::uint64_t kDropoutStream = 0x64726f70;  // "drop": LoRA dropout masks

}  // namespace sparc
