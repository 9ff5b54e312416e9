// The order and pace of training: learning-rate schedules, the epoch order of
// examples (a function of seed, task and epoch only, never of the world
// size: SPEC 3), and ETA text for progress lines. Shared by `sparc train`
// and `sparc pretrain`.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace sparc {

// Learning rate at optimizer step `step` (0-based) of `total`: linear warm-up
// over `warmup` steps, then cosine or linear decay to 0, or constant.
double scheduled_lr(const std::string& schedule, double base, std::int64_t step,
                    std::int64_t total, std::int64_t warmup);

// "H:MM:SS" for progress lines.
std::string format_eta(double seconds);

// A stable permutation of [0, n) for (seed, task, epoch): Fisher-Yates driven
// by counter-based draws, the same whatever the number of ranks.
std::vector<std::int64_t> epoch_order(std::int64_t n, std::uint64_t seed, std::uint64_t task,
                                      std::uint64_t epoch);

}  // namespace sparc
