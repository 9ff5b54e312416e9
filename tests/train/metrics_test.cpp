#include "train/metrics.h"

#include <gtest/gtest.h>

namespace sparc {
namespace {

TEST(Metrics, HandComputedThreeByThree) {
  // Rows: after task 1, 2, 3. Columns: tasks 1, 2, 3.
  const std::vector<std::vector<double>> A = {
      {0.8, 0.5, 0.4}, {0.7, 0.9, 0.6}, {0.6, 0.8, 0.7}};
  const std::vector<double> b = {0.5, 0.45, 0.5};
  auto m = compute_metrics(A, b);
  EXPECT_NEAR(m.acc, (0.6 + 0.8 + 0.7) / 3, 1e-12);               // 0.7
  EXPECT_NEAR(m.bwt, ((0.6 - 0.8) + (0.8 - 0.9)) / 2, 1e-12);      // -0.15
  EXPECT_NEAR(m.fwt, ((0.5 - 0.45) + (0.6 - 0.5)) / 2, 1e-12);     // 0.075
  EXPECT_NEAR(m.forgetting_per_task[0], 0.8 - 0.6, 1e-12);         // max(0.8, 0.7) - 0.6
  EXPECT_NEAR(m.forgetting_per_task[1], 0.9 - 0.8, 1e-12);         // max(0.5, 0.9) - 0.8
  EXPECT_EQ(m.forgetting_per_task[2], 0.0);
  EXPECT_NEAR(m.forgetting, 0.15, 1e-12);
  EXPECT_NEAR(m.retention[0], 75.0, 1e-9);
  EXPECT_NEAR(m.retention[1], 100.0 * 0.8 / 0.9, 1e-9);
  EXPECT_NEAR(m.retention[2], 100.0, 1e-9);
}

TEST(Metrics, NoForgettingMeansZeroBwtAndFullRetention) {
  const std::vector<std::vector<double>> A = {{0.7, 0.5}, {0.7, 0.6}};
  auto m = compute_metrics(A, {0.5, 0.5});
  EXPECT_EQ(m.bwt, 0.0);
  EXPECT_EQ(m.forgetting, 0.0);
  EXPECT_EQ(m.retention[0], 100.0);
  EXPECT_NEAR(m.fwt, 0.0, 1e-12);
}

TEST(Metrics, RejectsMalformedInput) {
  EXPECT_THROW(compute_metrics({}, {}), std::invalid_argument);
  EXPECT_THROW(compute_metrics({{0.5, 0.5}}, {0.5}), std::invalid_argument);
  EXPECT_THROW(compute_metrics({{0.5}}, {0.5, 0.5}), std::invalid_argument);
}

}  // namespace
}  // namespace sparc
