// The outcome of a continual run (SPEC 2) and its results.json.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "config/run_config.h"
#include "sparc/task_record.h"
#include "train/metrics.h"

namespace sparc {

struct RunResults {
  std::vector<std::vector<double>> accuracy;  // [after task i][task j]
  std::vector<double> zero_shot;
  std::vector<std::int64_t> test_sizes;
  ContinualMetrics metrics;
  double routing_accuracy = -1;  // domain-incremental with routing methods; else -1
  double ppl_before = -1, ppl_after = -1;
  std::int64_t trainable_params = 0;  // per task
  std::int64_t model_params = 0;
};

// Writes results.json for a finished run.
void write_results_json(const std::string& path, const RunConfig& config,
                        const RunResults& results, const std::vector<TaskRecord>& library);

}  // namespace sparc
