// The run configuration of `sparc train`: a YAML file plus `--set key=value`
// overrides, checked as a whole so that a user sees every mistake at once,
// each with its key path and the line it came from. No LibTorch here: the
// config is validated before anything heavy is loaded.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "config/config_error.h"
#include "config/method.h"

namespace sparc {

struct ModelSection {
  std::string path;            // required: a Hugging Face directory or a llama2.c .bin
  std::string tokenizer;       // empty: the one beside the model; "bytes": the byte-level tokenizer
  std::string dtype = "f32";   // f32 | f16 | bf16
  // cpu | cuda | cuda:N | auto (cuda when this LibTorch has it and a GPU is
  // visible, else cpu). The default stays cpu: a run's device is never a guess.
  std::string device = "cpu";
  std::string sharding = "none";  // none | layer: each rank keeps 1/N of every block (SPEC 3)
  // Which blocks re-run their forward in backward instead of keeping their
  // activations: always | never | auto. auto keeps blocks, first to last,
  // while their estimated kept bytes (activations, plus the gathered weights
  // when sharded) fit activation_budget_mb per forward pass, and recomputes
  // the rest; a budget of 0 keeps what runs kept before: every block
  // unsharded, none sharded. Results are the same bits in every mode.
  std::string recompute = "auto";
  std::int64_t activation_budget_mb = 0;
};

struct PromptSection {
  int length = 8;  // P soft tokens
};

struct PcaSection {
  int k = 16;
  // YAML "embedding" | "mean" | "hidden:<layer>"; the latter is stored as
  // source = "hidden" with hidden_layer = <layer> (-1 for the other sources).
  std::string source = "embedding";
  int hidden_layer = -1;
  std::int64_t max_tokens = 0;  // 0: every token of the training set
};

struct LoraSection {
  int rank = 4;
  double alpha = 8.0;
  double dropout = 0.0;
  std::vector<std::string> targets = {"q", "v"};  // from q, k, v, o, gate, up, down
  double lr = 0.0;                                // 0: train.lr
};

struct TrainSection {
  int epochs = 3;
  int batch_size = 8;
  int grad_accum = 1;
  double lr = 0.03;
  double weight_decay = 0.0;
  int warmup_steps = 0;
  std::string schedule = "cosine";  // cosine | linear | constant
  double max_grad_norm = 1.0;       // 0: no clipping
  int max_length = 128;
  int early_stop_patience = 0;  // 0: no early stopping
  int log_every = 10;
  double lambda_orth = 0.0;
  double val_fraction = 0.1;   // held out of train when a task has no validation file
  int max_train_examples = 0;  // 0: all
  int max_bad_steps = 3;  // consecutive steps with a NaN/Inf gradient before the run stops
  // Same bits at any world size (SPEC 3): a step's examples are cut into
  // work units of unit_size examples, the same whatever the number of ranks,
  // and dealt to the ranks; gradients, PCA sums, losses and perplexity add
  // exactly (fixed point). false: a float all-reduce of each rank's sum
  // (faster for `full`; results then depend on the world size).
  bool deterministic = true;
  int unit_size = 4;  // examples per work unit; a step uses at most batch_size*grad_accum/unit_size ranks
};

struct EvalSection {
  int batch_size = 32;
  std::string ppl_text;  // one text per line; empty: every task's test inputs
  int max_examples = 0;  // 0: all
};

struct CommSection {
  std::string backend = "auto";  // auto (nccl for cuda devices, else mpi) | mpi | nccl
  double timeout_s = 300.0;      // watchdog on every collective; 0 = wait forever
};

// Checkpoints (SPEC 4): where, how often, how many. Changing any of these
// between a run and its resume is allowed.
struct CheckpointSection {
  std::string dir;        // empty: <run_dir>/checkpoints
  int every_steps = 100;  // optimizer steps over the run; 0: only at task ends and on SIGTERM/SIGINT
  int keep = 3;           // the newest K checkpoints are kept (>= 1)
  // A checkpoint that cannot be written (disk full, read-only): "stop" ends
  // the run on every rank with exit code 74 (the previous checkpoint and
  // `latest` intact, resumable); "continue" logs a warning and trains on
  // without it.
  std::string on_write_error = "stop";
};

struct TaskSpec {
  std::string name;
  std::string format = "generic";        // generic | boolq | cb | rte | copa | wic | wsc | multirc
  std::string train, validation, test;   // validation is optional
  std::string template_text = "{text}";  // YAML key "template"
  // (label value, label word) in file order; the position is the class index.
  std::vector<std::pair<std::string, std::string>> verbalizer;
  std::string truncate_field;  // optional
};

struct RunConfig {
  MethodId method = MethodId::kSparc;        // YAML: the method's name (config/method.h)
  std::string setting = "task-incremental";  // task-incremental | domain-incremental
  std::uint64_t seed = 0;
  double reuse_threshold = 0.8;
  ModelSection model;
  PromptSection prompt;
  PcaSection pca;
  LoraSection lora;
  TrainSection train;
  EvalSection eval;
  CommSection comm;
  CheckpointSection checkpoint;
  std::vector<TaskSpec> tasks;
  std::string source_path;  // the config file, for messages; not a setting

  const MethodTraits& method_traits() const { return sparc::method_traits(method); }
  bool uses_lora() const { return method_traits().lora != LoraKind::kNone; }
  bool uses_subspace() const { return method_traits().prompt == PromptKind::kSubspace; }
  bool per_task_prompt() const { return method_traits().prompt != PromptKind::kNone; }
  bool trains_weights() const { return method_traits().trains_weights; }
};

// Equality of every setting; RunConfig::source_path is not compared.
bool operator==(const ModelSection& a, const ModelSection& b);
bool operator==(const PromptSection& a, const PromptSection& b);
bool operator==(const CommSection& a, const CommSection& b);
bool operator==(const CheckpointSection& a, const CheckpointSection& b);
bool operator==(const PcaSection& a, const PcaSection& b);
bool operator==(const LoraSection& a, const LoraSection& b);
bool operator==(const TrainSection& a, const TrainSection& b);
bool operator==(const EvalSection& a, const EvalSection& b);
bool operator==(const TaskSpec& a, const TaskSpec& b);
bool operator==(const RunConfig& a, const RunConfig& b);
inline bool operator!=(const RunConfig& a, const RunConfig& b) { return !(a == b); }

// Reads `path`, applies the overrides and validates; relative paths resolve
// against the directory of `path` (made absolute).
RunConfig load_run_config(const std::string& path, const std::vector<std::string>& overrides = {});

// The same for YAML text. `where` names it in messages; `base_dir` is what
// relative paths resolve against (empty: they stay as written).
//
// Overrides are "key.path=value": the value is parsed as YAML ("0.1", "full",
// "[q, v]"; an empty value is the empty string), list elements are addressed
// by index ("tasks.0.name=x" or "tasks[0].name=x"), missing sections are
// created. Paths set by an override are taken as written (relative to the
// working directory, as on any command line), not against base_dir.
//
// Besides the types and ranges documented in the sections, it enforces:
// model.path, tasks[i].train and tasks[i].test present; at least one task;
// unique task names without '/'; >= 2 classes with distinct non-empty label
// words per task; pca.k >= prompt.length for the sparc methods (the P prompt
// directions live in the k-dimensional subspace); non-empty, known,
// distinct lora.targets when the method uses LoRA; lambda_orth only with the
// sparc methods; early stopping only with validation data (a validation file
// or val_fraction > 0); one label set (same labels, same order) across tasks
// in the domain-incremental setting; no unknown or duplicate keys.
RunConfig parse_run_config(const std::string& yaml_text, const std::string& where,
                           const std::string& base_dir,
                           const std::vector<std::string>& overrides = {});

// The resolved config as YAML with every key written out in a fixed order:
// parse_run_config(to_yaml(c), ...) gives back an equal config, and equal
// configs give identical text (the input for the config hash ranks compare).
std::string to_yaml(const RunConfig& config);

}  // namespace sparc
