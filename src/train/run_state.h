// Checkpoints of a continual run (SPEC 4): what the run's state is mapped
// onto (TrainingState), how rank 0's writes are agreed by every rank, how a
// stop signal is agreed, and how a run continues from a checkpoint.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "ckpt/checkpoint.h"
#include "train/results.h"
#include "train/run_context.h"

namespace sparc {

// The position of a task being trained, for capture().
struct InTask {
  std::size_t task;
  const TaskRecord* record;
  torch::optim::AdamW* optimizer;
  const std::vector<torch::Tensor>* params;
  const std::vector<std::string>* names;
  std::int64_t epoch, step_in_epoch, task_step, total, sample_offset;
  double best_val;
  int bad_epochs;
  const std::vector<torch::Tensor>* best_params;
};

// Everything run() needs to continue: at a task boundary (`it` null: the
// next task is library.size()) or within a task.
TrainingState capture(RunContext& c, const InTask* it);

// One MAX all-reduce of the local stop flag (tag control, never grad), so
// every rank stops after the same step.
bool agree_on_stop(RunContext& c);

// Rank 0 runs `write` (a checkpoint, the run's result files); every rank
// learns whether it failed through the start-up agreement's MAX all-reduce
// of an error flag, so all stop together or all go on, none left waiting
// in a collective. "" when it worked, else the error text.
std::string root_writes_agreed(RunContext& c, const std::function<void()>& write);

// A checkpoint written by rank 0, its outcome agreed by every rank. A
// failure ends the run on every rank with StorageError (exit 74) under
// checkpoint.on_write_error = stop, or when the checkpoint was asked for by
// a stop signal; under `continue` it is a warning and training goes on.
void checkpoint_agreed(RunContext& c, const std::function<TrainingState()>& state, bool task_end,
                       bool stopping);

// Rank 0 picks the checkpoint `spec` names ("auto": the newest that
// verifies in checkpoint.dir; a file; a directory), every rank reads it and
// checks it against the run; c.resumed holds it (none: left null).
void choose_checkpoint(RunContext& c, const std::string& spec);

// Restores everything before the task loop from c.resumed; returns the
// first task to run.
std::size_t restore_run(RunContext& c, RunResults& r, std::int64_t& routed_right);

// The interrupted task's record, its adapters trainable again.
TaskRecord restore_current_task(RunContext& c);

// The optimizer's moments and steps of an interrupted task.
void restore_optimizer(torch::optim::AdamW& optimizer, const std::vector<torch::Tensor>& params,
                       const std::vector<std::string>& names, const TrainingState& st);

}  // namespace sparc
