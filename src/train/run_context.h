// The state of one continual run that its parts share: the config, the
// ranks, the method, the tokenizer, the model, every task's data and
// subspace, and the library of finished tasks. The coordinator
// (trainer.cpp) owns it; the inputs (run_inputs.cpp), the subspaces
// (task_subspaces.cpp), evaluation (evaluator.cpp), the task loop
// (task_loop.cpp) and checkpointing (run_state.cpp) work on it.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "config/run_config.h"
#include "core/error.h"
#include "data/task_encoder.h"
#include "model/transformer.h"
#include "sparc/method.h"
#include "sparc/subspace.h"
#include "sparc/task_record.h"
#include "tokenizer/tokenizer.h"
#include "train/ranks.h"

namespace sparc {

class CheckpointDir;
struct TrainingState;
struct RunResults;

// One task's data, encoded.
struct TaskData {
  std::string name;
  std::vector<EncodedExample> train, validation, test;
  std::vector<std::int32_t> label_tokens;  // scoring token of each class
};

struct RunContext {
  RunConfig cfg;
  std::string run_dir;
  Ranks ranks;
  std::unique_ptr<Method> method;

  // Inputs (run_inputs.cpp).
  std::unique_ptr<Tokenizer> tok;
  std::string tok_path;
  std::unique_ptr<Transformer> model;
  std::vector<TaskData> data;
  std::vector<std::vector<std::int32_t>> token_pools;  // train input tokens per task (init sampling)
  std::vector<torch::Tensor> sampled_rows;  // per task: its sampled prompt rows [P, D] (f64, host)
  std::int64_t rss_before_model_kb = 0;
  std::uint64_t fingerprint = 0;  // of the base model (checkpoints)

  // The method's state.
  std::vector<Subspace> subspaces;  // every task's, computed up front (routing needs them too)
  std::vector<TaskRecord> library;  // finished tasks
  LoraSet shared_lora;              // the `lora` baseline's one adapter set

  // Progress and outputs (task_loop.cpp, run_state.cpp).
  std::ofstream metrics_out;
  std::vector<std::string> metric_history;  // metrics.jsonl lines so far
  bool progress_line = false;               // a terminal: one \r-updated line
  std::int64_t steps_run = 0;               // optimizer steps over the whole run
  std::int64_t bad_steps_in_a_row = 0, skipped_steps = 0;  // non-finite gradients
  // Benchmarks: stop a task after this many optimizer steps (-1: never) and
  // time every step after the first.
  std::int64_t step_limit = -1;
  double timed_seconds = 0;
  std::int64_t timed_steps = 0, timed_tokens = 0, timed_examples = 0;
  // Checkpoints (SPEC 4): set by run(); null for benchmarks and evaluation.
  std::unique_ptr<CheckpointDir> ckpt_dir;
  std::unique_ptr<TrainingState> resumed;  // the state to continue from, until consumed
  std::int64_t failed_checkpoints = 0;     // writes that failed (on_write_error: continue)
  const RunResults* results_so_far = nullptr;
  const std::int64_t* routed_right_so_far = nullptr;

  RunContext();
  ~RunContext();

  int rank() const { return ranks.rank(); }
  int world() const { return ranks.world(); }
  bool is_root() const { return ranks.is_root(); }
  bool mine(std::int64_t position, std::int64_t begin = 0) const {
    return ranks.mine(position, begin);
  }

  // Layer sharding makes every pass over the blocks a sequence of
  // collectives, so every rank must run the same number of passes. Before a
  // loop that runs `passes` passes here: the most any rank will run (one
  // small all-reduce; no collective at all when the model is not sharded).
  std::int64_t most_passes(std::int64_t passes);
  // After the loop: idle passes up to `most`.
  // `layers` and `output` as Transformer::idle_pass.
  void idle_passes(std::int64_t done, std::int64_t most, std::int64_t layers,
                   Transformer::OutputUse output, bool backward = false);

  // What the method reads of the run.
  MethodContext method_context();
  // P token embeddings [P, D] (f64) sampled from task `task`'s training
  // tokens: looked up once for every task by load_inputs, on every rank (a
  // sharded lookup is a collective, and methods ask for them on some paths only).
  torch::Tensor sampled_token_embeddings(std::size_t task);
};

// Copies saved trained weights (method full) into the model; `missing`
// makes the error for a weight the saved set lacks.
void restore_weights(Transformer& model, const std::map<std::string, torch::Tensor>& saved,
                     const std::function<InputError(const std::string& name)>& missing);

// Inputs (run_inputs.cpp). Every rank reads and checks its inputs
// (tokenizer, data, model); one agreement before any other collective, so
// an input error on one host stops every rank with it; then the ranks
// compare base-model fingerprints.
void load_inputs(RunContext& c);

// Subspaces and routing (task_subspaces.cpp).
// Every task's PCA subspace, accumulated over the ranks' shares (SPEC 1.1, 3).
void compute_subspaces(RunContext& c);
// The vectors an example contributes to its task's PCA and to routing.
torch::Tensor pca_features(RunContext& c, const EncodedExample& e);
// Whether pca_features(e) makes a pass over the model (a lookup, and the
// blocks up to features_layers(c)): what most_passes counts.
bool features_make_pass(const RunContext& c, const EncodedExample& e);
std::int64_t features_layers(const RunContext& c);

}  // namespace sparc
