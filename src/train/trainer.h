// The continual trainer (SPEC 1 and 2): the coordinator that sequences the
// tasks of a run config over one frozen model, keeps the task library,
// trains each task, evaluates every task after each one, and writes the run
// directory: config.yaml, log.txt, metrics.jsonl, results.json,
// library.safetensors. Its parts: run_inputs.cpp (tokenizer, data, model),
// task_subspaces.cpp (PCA), the method (src/sparc/method.h), task_loop.cpp
// (one task's steps), evaluator.cpp (accuracy, routing, perplexity),
// run_state.cpp (checkpoints and resume), results.cpp (results.json).
#pragma once

#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "config/run_config.h"
#include "model/transformer.h"
#include "sparc/task_record.h"
#include "train/results.h"
#include "train/schedule.h"

namespace sparc {

struct RunContext;

class ContinualTrainer {
 public:
  // `run_dir` receives the outputs (written by rank 0); created if needed.
  // With a communicator, the run is data parallel over its ranks (SPEC 3):
  // every rank must construct the trainer with the same config. `comm`
  // carries the data (gradients, PCA sums, gathers, evaluation counts);
  // `control`, when given, the agreement and stop flags (see train/ranks.h).
  ContinualTrainer(RunConfig config, std::string run_dir, Communicator* comm = nullptr,
                   Communicator* control = nullptr);
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
    double gather_wait_ms_per_step = 0;  // this rank blocked waiting for gathered blocks
    double vocab_bytes_per_step = 0;  // of the gathers: the embedding's and output layer's
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
  const std::vector<TaskRecord>& library() const;
  const Transformer& model() const;

 private:
  std::unique_ptr<RunContext> ctx_;
};

}  // namespace sparc
