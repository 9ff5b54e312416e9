#include "train/metrics.h"

#include <algorithm>
#include <stdexcept>

namespace sparc {

ContinualMetrics compute_metrics(const std::vector<std::vector<double>>& A,
                                 const std::vector<double>& b) {
  const size_t T = A.size();
  if (T == 0 || b.size() != T) throw std::invalid_argument("metrics need a T x T matrix and T zero-shot values");
  for (const auto& row : A)
    if (row.size() != T) throw std::invalid_argument("accuracy matrix is not square");
  ContinualMetrics m;
  const auto& last = A[T - 1];
  for (size_t j = 0; j < T; ++j) m.acc += last[j] / T;
  m.forgetting_per_task.assign(T, 0.0);
  for (size_t j = 0; j + 1 < T; ++j) {
    m.bwt += (last[j] - A[j][j]) / (T - 1);
    double best = A[0][j];
    for (size_t l = 1; l + 1 < T; ++l) best = std::max(best, A[l][j]);
    m.forgetting_per_task[j] = best - last[j];
    m.forgetting += m.forgetting_per_task[j] / (T - 1);
  }
  for (size_t j = 1; j < T; ++j) m.fwt += (A[j - 1][j] - b[j]) / (T - 1);
  for (size_t j = 0; j < T; ++j) m.retention.push_back(A[j][j] > 0 ? 100.0 * last[j] / A[j][j] : 0.0);
  return m;
}

}  // namespace sparc
