// Continual-learning metrics of SPEC section 2, from the accuracy matrix
// A[i][j] (accuracy on task j's test split after training task i) and the
// zero-shot accuracies b_j of the untouched base model.
#pragma once

#include <vector>

namespace sparc {

struct ContinualMetrics {
  double acc = 0;         // mean_j A[T][j]
  double bwt = 0;         // mean_{j<T} (A[T][j] - A[j][j])
  double fwt = 0;         // mean_{j>1} (A[j-1][j] - b_j)
  double forgetting = 0;  // mean_{j<T} of F_j
  std::vector<double> forgetting_per_task;  // F_j = max_{l<T} A[l][j] - A[T][j]; 0 for the last task
  std::vector<double> retention;            // R_j = 100 * A[T][j] / A[j][j]
};

// Throws std::invalid_argument unless A is T x T (T >= 1) and b has T entries.
ContinualMetrics compute_metrics(const std::vector<std::vector<double>>& accuracy,
                                 const std::vector<double>& zero_shot);

}  // namespace sparc
