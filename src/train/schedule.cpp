#include "train/schedule.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <utility>

#include "core/random.h"

namespace sparc {

std::string format_eta(double seconds) {
  int s = int(std::max(0.0, seconds));
  char buf[32];
  std::snprintf(buf, sizeof buf, "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60);
  return buf;
}

double scheduled_lr(const std::string& schedule, double base, std::int64_t step,
                    std::int64_t total, std::int64_t warmup) {
  if (warmup > 0 && step < warmup) return base * double(step + 1) / double(warmup);
  if (schedule == "constant") return base;
  const double span = double(std::max<std::int64_t>(1, total - warmup));
  const double progress = std::min(1.0, double(step - warmup) / span);
  if (schedule == "linear") return base * (1.0 - progress);
  return base * 0.5 * (1.0 + std::cos(M_PI * progress));
}

std::vector<std::int64_t> epoch_order(std::int64_t n, std::uint64_t seed, std::uint64_t task,
                                      std::uint64_t epoch) {
  std::vector<std::int64_t> order(n);
  for (std::int64_t i = 0; i < n; ++i) order[i] = i;
  for (std::int64_t i = n - 1; i > 0; --i) {
    double u = uniform01(random_key({seed, task, epoch, std::uint64_t(i)}));
    std::swap(order[i], order[std::int64_t(u * double(i + 1))]);
  }
  return order;
}

}  // namespace sparc
