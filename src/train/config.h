// The run configuration of `sparc train`: a YAML file plus `--set key=value`
// overrides, checked as a whole so that a user sees every mistake at once,
// each with its key path and the line it came from. No LibTorch here: the
// config is validated before anything heavy is loaded.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"

namespace sparc {

struct ModelSection {
  std::string path;            // required: a Hugging Face directory or a llama2.c .bin
  std::string tokenizer;       // empty: the one beside the model; "bytes": the byte-level tokenizer
  std::string dtype = "f32";   // f32 | f16 | bf16
  std::string device = "cpu";  // cpu | cuda | cuda:N
  std::string sharding = "none";  // none | layer: each rank keeps 1/N of every block (SPEC 3)
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
  std::string method = "sparc";              // sparc | sparc+lora | prompt | lora | full
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

  bool uses_lora() const { return method == "lora" || method == "sparc+lora"; }
  bool uses_subspace() const { return method == "sparc" || method == "sparc+lora"; }
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

// Every problem found in a config, one per line of what(), each starting with
// its location: "file:line: key.path: message", "file (--set a.b=c): ...", or
// "file: ..." when no line is known. where() is the config file.
class ConfigError : public InputError {
 public:
  ConfigError(const std::string& file, std::vector<std::string> problems);
  const char* what() const noexcept override { return text_.c_str(); }
  const std::vector<std::string>& problems() const { return problems_; }

 private:
  std::vector<std::string> problems_;
  std::string text_;
};

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

// ---- sparc pretrain ------------------------------------------------------------

// The configuration of `sparc pretrain`: a small llama trained from random
// weights with a next-token objective on plain text (one text per line),
// written as a Hugging Face directory.
struct PretrainConfig {
  std::uint64_t seed = 0;
  std::string out;  // required: the model directory written (the cache)
  // model
  std::int64_t dim = 256, layers = 4, heads = 4, kv_heads = 0, ffn = 688, max_seq_len = 512;
  // "bytes": the byte-level tokenizer (configs then say tokenizer: bytes);
  // "sentencepiece": a BPE tokenizer of tokenizer_vocab pieces trained on the
  // training lines by Debian's spm_train and written beside the model as
  // tokenizer.model (configs then leave model.tokenizer out).
  std::string tokenizer = "bytes";
  int tokenizer_vocab = 2048;
  // data
  std::vector<std::string> text;  // required: files of one text per line
  double val_fraction = 0.01;     // lines held out for the validation loss
  // train
  std::int64_t steps = 500;
  int batch_size = 16;  // sequences per optimizer step, over all ranks
  int seq_len = 128;
  double lr = 3e-3;
  double weight_decay = 0.1;  // matrices only
  int warmup_steps = 20;
  std::string schedule = "cosine";
  double max_grad_norm = 1.0;
  std::string dtype = "f32";  // f32 | bf16 (bf16 matrix products, f32 weights and optimizer state)
  int log_every = 20;
  int eval_every = 0;  // 0: validation loss at the start and the end only
  std::string source_path;
};

// Like load_run_config: every problem at once, paths against the file's directory.
PretrainConfig load_pretrain_config(const std::string& path,
                                    const std::vector<std::string>& overrides = {});
PretrainConfig parse_pretrain_config(const std::string& yaml_text, const std::string& where,
                                     const std::string& base_dir,
                                     const std::vector<std::string>& overrides = {});
// Every setting that shapes the trained weights, in a fixed order (the cache key).
std::string to_yaml(const PretrainConfig& config);

}  // namespace sparc
