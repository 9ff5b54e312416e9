// `sparc pretrain`: trains a small llama from random weights with a
// next-token objective on plain text, data parallel (SPEC 3: sample order and
// every draw keyed by (seed, step, global index); all weight gradients in one
// `grad` all-reduce per step), and writes it as a Hugging Face directory
// (config.json + model.safetensors) with pretrain.json beside: the config,
// the data fingerprint and the measured losses. A directory whose
// pretrain.json matches the config and data is reused, not retrained.
#pragma once

#include <string>

#include "comm/communicator.h"
#include "config/pretrain_config.h"

namespace sparc {

struct PretrainResult {
  std::string out;
  bool cached = false;  // an existing directory matched: nothing was trained
  std::int64_t steps = 0, parameters = 0, train_tokens = 0, val_tokens = 0;
  double initial_val_loss = 0, final_val_loss = 0;  // nats per token
  double tokens_per_s = 0, seconds = 0;
};

// Every rank calls it with the same config; rank 0 writes the directory.
// `comm` carries gradients and validation sums, `control` (when given) the
// cache decision and the final barrier (see train/ranks.h).
PretrainResult pretrain(const PretrainConfig& config, Communicator* comm = nullptr,
                        Communicator* control = nullptr);

// The mean next-token loss (nats per token) of the model in `dir` on the
// validation lines of `config` (single process), as pretrain() measures it.
double pretrain_validation_loss(const PretrainConfig& config, const std::string& dir);

}  // namespace sparc
