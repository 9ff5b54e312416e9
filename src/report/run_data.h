// What `sparc report` reads from one run directory (written by `sparc
// train`): results.json (required), metrics.jsonl (loss curves, tokens/s;
// optional) and config.yaml (the reuse threshold; optional). LibTorch-free.
#pragma once

#include <cstdint>
#include <limits>
#include <map>
#include <string>
#include <vector>

namespace sparc::report {

inline constexpr double kMissing = std::numeric_limits<double>::quiet_NaN();

// One task's initialisation decision (results.json "reuse").
struct ReuseDecision {
  std::string task;
  std::string reused_from;                                   // empty: not reused
  std::vector<std::pair<std::string, double>> similarities;  // earlier task -> similarity
  std::int64_t orthogonal_directions = 0;
  bool orthogonal_capped = false;
};

// One logged optimizer step of metrics.jsonl.
struct LossPoint {
  std::int64_t step = 0;
  double loss = 0;
};

struct RunData {
  std::string dir;
  std::string method;
  std::string setting;
  std::vector<std::string> tasks;
  std::vector<std::vector<double>> accuracy;  // [after task i][task j], in [0, 1]
  std::vector<double> zero_shot;              // empty when absent
  std::vector<std::int64_t> test_sizes;
  double acc = kMissing, bwt = kMissing, fwt = kMissing, forgetting = kMissing;
  std::vector<double> forgetting_per_task;
  std::vector<double> retention;  // percent per task
  std::int64_t trainable_params = -1, trainable_params_total = -1, model_params = -1;
  double trainable_fraction = kMissing;
  double routing_accuracy = kMissing;  // NaN: not measured (task-incremental, lora, full)
  double ppl_before = kMissing, ppl_after = kMissing;
  std::vector<ReuseDecision> reuse;
  double reuse_threshold = kMissing;  // from config.yaml
  // metrics.jsonl: per task (in order of first appearance), the logged losses.
  std::vector<std::pair<std::string, std::vector<LossPoint>>> loss_curves;
  // Mean over tasks of the last logged tokens_per_s of each task (the
  // trainer logs the throughput since the task began); NaN without metrics.
  double tokens_per_s = kMissing;
  bool has_metrics = false;
};

// Reads `dir`. Throws InputError naming the file (and line or field) when the
// directory, results.json or a metrics.jsonl line is missing or malformed.
RunData load_run(const std::string& dir);

// Parsers on text, for tests; `where` names the file in errors.
void parse_results_json(const std::string& text, const std::string& where, RunData& run);
void parse_metrics_jsonl(const std::string& text, const std::string& where, RunData& run);

}  // namespace sparc::report
