// The continual trainer (SPEC sections 1 and 2): sequences the tasks of a
// run config over one frozen model, keeps the task library (subspace,
// prompt, adapters, reuse decision per task), trains each task's parameters,
// evaluates every task after each one, and writes the run directory:
// config.yaml, log.txt, metrics.jsonl, results.json, library.safetensors.
#pragma once

#include <torch/torch.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "data/task_encoder.h"
#include "model/transformer.h"
#include "sparc/subspace.h"
#include "config/run_config.h"
#include "train/metrics.h"

namespace sparc {

// One task's data, encoded.
struct TaskData {
  std::string name;
  std::vector<EncodedExample> train, validation, test;
  std::vector<std::int32_t> label_tokens;  // scoring token of each class
};

// One entry of the task library.
struct TaskEntry {
  std::string name;
  Subspace subspace;
  torch::Tensor z;       // sparc methods: [P, k] coefficients (f32)
  torch::Tensor z_init;  // the coefficients training started from
  torch::Tensor prompt;  // [P, D] prompt embeddings as fed to the model (f32); undefined: none
  std::map<std::string, std::shared_ptr<LoraAdapter>> lora;  // "layers.<i>.<target>" -> adapter
  int reused_from = -1;  // index of the task whose prompt initialised this one
  std::vector<double> similarities;  // against each earlier task, at initialisation
  std::int64_t orth_directions = 0;
  bool orth_capped = false;
  double orth_residual = 0;
};

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

class ContinualTrainer {
 public:
  // `run_dir` receives the outputs (written by rank 0); created if needed.
  // With a communicator, the run is data parallel over its ranks (SPEC 3):
  // every rank must construct the trainer with the same config.
  ContinualTrainer(RunConfig config, std::string run_dir, Communicator* comm = nullptr);
  ~ContinualTrainer();
  RunResults run();

  // Continues run() from a checkpoint (SPEC 4): `spec` is "auto" (the newest
  // checkpoint in checkpoint.dir that verifies, damaged ones reported and
  // skipped; none: run() starts from the beginning) or a checkpoint file
  // (or a directory of them). Refuses a checkpoint of another base model or
  // of a config that differs in more than logging, checkpoint cadence and
  // the number of ranks. Every rank calls it with the same spec, before run().
  void resume(const std::string& spec);

  // Times `steps` optimizer steps of the first task (after one untimed
  // warm-up step): loads and agrees like run(), writes nothing.
  struct StepBench {
    double ms_per_step = 0, tokens_per_s = 0;
    double grad_bytes_per_step = 0, gather_bytes_per_step = 0;
    double mean_example_tokens = 0;  // prompt excluded
    std::int64_t rss_before_model_kb = 0;  // resident memory just before the model was loaded
    std::int64_t steps = 0, trainable_params = 0;
  };
  StepBench bench_steps(int steps);

  // Re-evaluates a finished run from its run directory (config.yaml and
  // library.safetensors): the last row of the accuracy matrix, and routing
  // accuracy in the domain-incremental setting. Other fields stay empty.
  RunResults evaluate_saved();

  // After run(): the library and the model, for tests.
  const std::vector<TaskEntry>& library() const;
  const Transformer& model() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Writes results.json for a finished run.
void write_results_json(const std::string& path, const RunConfig& config,
                        const RunResults& results, const std::vector<TaskEntry>& library);

}  // namespace sparc
