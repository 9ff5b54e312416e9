// sparc demo: the whole product on real data in one command. Prepares the
// data, pretrains the base model (cached), trains every method in the
// task-incremental and the domain-incremental setting, writes the report and
// prints a summary. Each step runs as a child process of this binary (under
// mpirun with --ranks N), logging to <out>/logs/; a rerun skips the finished
// runs and resumes an interrupted one from its checkpoint.
#pragma once

#include <string>
#include <vector>

namespace sparc::demo {

// Every method's name, in the method table's order (config/method.h).
std::vector<std::string> method_names();
inline const std::vector<std::string> kSettings = {"task-incremental", "domain-incremental"};

struct Options {
  std::string out = "runs/demo";
  std::string data = "data";
  std::string models = "models";
  std::string sources;
  int ranks = 1;
  // Per rank. One: the demo's small model runs faster on one thread than on
  // two (measured 2275 vs 1410 tokens/s for a LoRA step); --ranks uses more cores.
  int threads = 1;
  std::vector<std::string> methods = method_names();
  std::vector<std::string> settings = kSettings;
  std::vector<std::string> pretrain_sets, train_sets;  // --set for every pretrain / train
  // model.device and comm.backend of the pretraining and every training run
  // (--device, --backend); empty: the configs' own (cpu, auto).
  std::string device, backend;
};

// The --set overrides the pretraining run and each training run get:
// --device and --backend first, then --pretrain-set / --train-set, whose
// later value of the same key wins.
std::vector<std::string> pretrain_overrides(const Options& o);
std::vector<std::string> train_overrides(const Options& o);

// Runs the demo with SIGINT and SIGTERM caught: the running step is stopped
// and the demo exits 75, to be resumed by the same command. Returns the exit
// code (that of a failed step, else 0).
int run_demo(const Options& o);

}  // namespace sparc::demo
