// The configuration of `sparc pretrain`, read like the run config
// (config/run_config.h): every problem at once, with its location.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "config/config_error.h"

namespace sparc {

// The configuration of `sparc pretrain`: a small llama trained from random
// weights with a next-token objective on plain text (one text per line),
// written as a Hugging Face directory.
struct PretrainConfig {
  std::uint64_t seed = 0;
  std::string out;  // required: the model directory written (the cache)
  // model
  std::int64_t dim = 256, layers = 4, heads = 4, kv_heads = 0, ffn = 688, max_seq_len = 512;
  // Where it trains, as the run config's model.device and comm section: cpu
  // | cuda | cuda:N | auto, and auto | mpi | nccl. Neither shapes the
  // weights, so neither is in the cache key (to_yaml).
  std::string device = "cpu";
  std::string backend = "auto";
  double timeout_s = 300.0;  // comm.timeout_s: the watchdog on every collective; 0: none
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
// Every setting that shapes the trained weights, in a fixed order (the cache
// key): not the device, backend or timeout.
std::string to_yaml(const PretrainConfig& config);

}  // namespace sparc
