// sparc train: one continual-learning run from a YAML config.
#include <sys/stat.h>

#include <iostream>

#include "cli/commands.h"
#include "core/error.h"
#include "core/log.h"
#include "train/config.h"
#include "train/trainer.h"

namespace sparc::cli {

namespace {
std::string stem(const std::string& path) {
  auto slash = path.find_last_of('/');
  std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  auto dot = base.find_last_of('.');
  return dot == std::string::npos ? base : base.substr(0, dot);
}
}  // namespace

void add_train_command(CLI::App& app, std::vector<Command>& commands) {
  struct Args {
    std::string config, run_dir;
    std::vector<std::string> sets;
  };
  auto args = std::make_shared<Args>();
  auto* sub = app.add_subcommand("train", "Train a task sequence (continual learning)");
  sub->add_option("--config", args->config, "run configuration (YAML)")->required();
  sub->add_option("--run-dir", args->run_dir, "output directory (default: runs/<config name>)");
  sub->add_option("--set", args->sets, "override a config key: key.path=value (repeatable)");
  commands.push_back({sub, [args]() {
    RunConfig cfg = load_run_config(args->config, args->sets);
    std::string dir = args->run_dir.empty() ? "runs/" + stem(args->config) : args->run_dir;
    ::mkdir("runs", 0755);
    ::mkdir(dir.c_str(), 0755);
    add_log_file(dir + "/log.txt");
    spdlog::info("sparc train: config {} method {} setting {} -> {}", args->config, cfg.method,
                 cfg.setting, dir);
    ContinualTrainer trainer(cfg, dir);
    trainer.run();
    spdlog::info("results: {}/results.json", dir);
    return kExitOk;
  }});
}

}  // namespace sparc::cli
