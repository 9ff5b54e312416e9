// Checks that run before any model is loaded, on every rank, so that a run
// that cannot succeed stops in seconds with every reason listed at once
// instead of failing after the model has loaded (or after an hour of
// training, when the first checkpoint is written). No LibTorch here.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "config/run_config.h"

namespace sparc {

// Every input a config names: the model and tokenizer exist; each data file
// (train, validation, test, eval.ppl_text) can be opened, is not a
// directory, parses in its format, and has only labels the task's
// verbalizer knows. One problem per file ("path:line: ..." for the first bad
// line of a file), a file named by several keys reported once with all of
// them. Empty when all is well.
std::vector<std::string> check_run_inputs(const RunConfig& config);

// About how many bytes one checkpoint of this run takes: for a method that
// trains the weights (full), the weights and two optimizer moments (3x the
// model's files); for the other methods, whose trainable state is small, a
// floor of 16 MiB. An estimate from file sizes, not a bound; the model
// itself is not read.
std::uint64_t checkpoint_bytes_estimate(const RunConfig& config);

// The run directory can be created and written (a file is created and
// removed in it: permission bits say nothing to root), and its file system
// has at least `bytes_needed` bytes free (0: no space check). Creates the
// directory. One problem per line; empty when all is well. `role` ends each
// message ("the run directory", "checkpoint.dir").
std::vector<std::string> check_run_directory(const std::string& dir, std::uint64_t bytes_needed,
                                             const std::string& role = "the run directory");

}  // namespace sparc
