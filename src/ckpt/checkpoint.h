// HDF5 checkpoints (SPEC 4): everything a continual run needs to continue
// exactly where it stopped, in one self-describing file per checkpoint
// (every field is a named dataset or attribute; docs/checkpoint-format.md).
//
// The file is written by rank 0 (trainable state is replicated, SPEC 3) as
// NAME.h5.tmp, flushed, fsynced and renamed; then NAME.h5.sha256 (the
// SHA-256 of the whole file, `sha256sum -c` format) and the `latest` pointer
// are written the same way. A checkpoint counts only when its checksum file
// exists and matches: the checksum is verified before libhdf5 parses the
// file, since the library itself can crash on damaged files.
//
// This layer knows tensors and plain values only; the trainer maps its
// state onto TrainingState (capture/restore).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "config/run_config.h"
#include "sparc/task_record.h"

namespace sparc {

inline constexpr int kCheckpointFormatVersion = 1;

// Tasks are stored as TaskRecords (sparc/task_record.h), the schema the
// trainer, library.safetensors and the PEFT export share; LoRA factors are
// read back without scale or dropout (the run config's; see adopt_lora).

// One trainable tensor's AdamW state, in the optimizer's parameter order.
struct CkptParam {
  std::string name;  // "z", "prompt", "lora.layers.0.q.a", "weights.<canonical>"
  std::int64_t step = 0;
  torch::Tensor exp_avg, exp_avg_sq;  // undefined before the first step
};

struct TrainingState {
  // Identity of the run.
  std::string config_yaml;  // the resolved config (to_yaml)
  std::uint64_t model_fingerprint = 0;
  std::string model_path, arch;  // arch: module naming of exports, model/model_config.h module_naming
  std::int64_t dim = 0, n_layers = 0, n_heads = 0, n_kv_heads = 0, vocab_size = 0;
  std::string method, setting;  // serialised names (config/method.h)
  std::uint64_t seed = 0;
  std::int64_t world_size = 1;      // of the run that wrote it (information only)
  std::vector<std::string> tasks;   // the config's task names, in order

  // Data cursor. `task` is the task being trained (in_task) or the next one
  // to train (task == tasks.size(): every task is done). Within a task:
  // the next optimizer step is `task_step` = epoch * steps_per_epoch +
  // step_in_epoch; step_in_epoch == steps_per_epoch means the epoch's steps
  // are done and its end (early-stopping check) is still to come.
  std::int64_t task = 0;
  bool in_task = false;
  std::int64_t epoch = 0, step_in_epoch = 0, task_step = 0, task_total_steps = 0;
  std::int64_t sample_offset = 0;  // global position in the epoch's sample order
  std::int64_t global_step = 0;    // optimizer steps over the whole run

  // Counter-based generators (SPEC 3): no stream state exists, only keys.
  std::map<std::string, std::uint64_t> rng_streams;

  std::vector<TaskRecord> subspaces;  // every task of the config: name and subspace only
  std::vector<TaskRecord> library;    // trained tasks
  TaskRecord current;                // in_task: the task being trained

  // Optimizer (in_task): AdamW moments and step counts.
  std::vector<CkptParam> params;
  // Early stopping (in_task).
  double best_val = -1;
  std::int64_t bad_epochs = 0;
  std::vector<torch::Tensor> best_params;  // aligned with params; empty: none yet

  LoraSet shared_lora;                                         // method lora
  std::vector<std::pair<std::string, torch::Tensor>> weights;  // method full: every weight

  // Results so far.
  std::vector<std::vector<double>> accuracy;  // rows after each finished task
  std::vector<double> zero_shot;
  std::vector<std::int64_t> test_sizes;
  double ppl_before = -1;
  std::int64_t routed_right = 0;
  std::int64_t trainable_params = 0, model_params = 0;
  std::vector<std::string> metric_history;  // the lines of metrics.jsonl so far
};

// Writes `state` as an HDF5 file at `path` (no checksum, not atomic: see
// CheckpointDir). Throws StorageError with the system's reason ("No space
// left on device") when the file cannot be written. `mid_write` runs once, after part of the file is on disk
// (fault injection kills the process there).
void write_checkpoint_file(const std::string& path, const TrainingState& state,
                           const std::function<void()>& mid_write = {});

// Reads a checkpoint written by write_checkpoint_file. Call only after
// verify_checkpoint: libhdf5 is not robust to damaged files. Throws
// InputError naming the file and the missing field.
TrainingState read_checkpoint_file(const std::string& path);

// SHA-256 of a file, lowercase hex.
std::string sha256_file(const std::string& path);

// "" when PATH has its PATH.sha256 beside it and the digest matches; else
// why not ("no checksum file ...", "checksum mismatch ...").
std::string verify_checkpoint(const std::string& path);

// A directory of checkpoints: ckpt-<global step, 8 digits>.h5 (written
// during a task) and ckpt-<step>-end.h5 (written at a task's end), each with
// its .sha256, and `latest` (the newest file name).
class CheckpointDir {
 public:
  CheckpointDir(std::string dir, int keep);
  const std::string& dir() const { return dir_; }

  // Writes atomically, updates `latest`, keeps the newest `keep`. Returns the path.
  // `task_end` picks the file name. Fault point "checkpoint-write" (1-based
  // count of writes by this process) fires mid-file.
  // A write that fails (disk full, read-only file system, the directory
  // gone or turned into a file) removes every file it created, leaves
  // `latest` and the older checkpoints untouched (retention runs only after
  // a success) and throws StorageError naming the path, the system's reason
  // and the checkpoint `latest` still names.
  std::string save(const TrainingState& state, bool task_end, int rank);

  // Checkpoint files (verified or not), newest first.
  std::vector<std::string> list() const;

  // The newest checkpoint that verifies, "" when none; each one skipped is
  // reported (warning naming the file and the reason) in `skipped`.
  std::string newest_valid(std::vector<std::string>* skipped = nullptr) const;

 private:
  std::string dir_;
  int keep_;
  std::int64_t writes_ = 0;
};

// Why a run with config `now` cannot continue a checkpoint made with config
// `then`, one line per difference (empty: it can). Logging (train.log_every),
// the checkpoint section, the comm section and model.path may change (the
// base model is compared by fingerprint instead); the first `tasks_started`
// tasks are done or in progress, and the later ones were measured already
// (subspaces, zero-shot accuracy, forward-transfer entries), so no task may change.
std::vector<std::string> resume_conflicts(const RunConfig& now, const RunConfig& then,
                                          std::size_t tasks_started);

// SIGTERM / SIGINT set a flag (async-signal-safe) instead of killing the
// process; the trainer polls it once per optimizer step. A second signal
// ends the process at once.
void install_stop_signal_handlers();
bool stop_signal_received();

}  // namespace sparc
