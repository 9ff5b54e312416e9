// sparc train: one continual-learning run from a YAML config.
#include <iostream>
#include <nlohmann/json.hpp>

#include "ckpt/checkpoint.h"
#include "cli/commands.h"
#include "comm/agreement.h"
#include "comm/communicator_factory.h"
#include "core/error.h"
#include "core/hash.h"
#include "core/file.h"
#include "core/log.h"
#include "core/threads.h"
#include "data/jsonl_reader.h"
#include "config/run_config.h"
#include "train/preflight.h"
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
    std::string config, run_dir, resume;
    std::vector<std::string> sets;
  };
  auto args = std::make_shared<Args>();
  auto* sub = app.add_subcommand("train", "Train a task sequence (continual learning)");
  sub->add_option("--config", args->config, "run configuration (YAML)")->required();
  sub->add_option("--run-dir", args->run_dir, "output directory (default: runs/<config name>)");
  sub->add_option("--set", args->sets, "override a config key: key.path=value (repeatable)");
  sub->add_option("--resume", args->resume,
                  "continue from a checkpoint: 'auto' (the newest valid one in checkpoint.dir; "
                  "none: start from the beginning) or a checkpoint file");
  commands.push_back({sub, [args]() {
    // Preemption: SIGTERM/SIGINT finish the step, write a checkpoint, exit 75.
    install_stop_signal_handlers();
    // One process per rank under mpirun or srun; a single rank without.
    // MPI is the control plane (agreement, arrival board, watchdog); the data
    // plane (grad, pca, gather, eval) is comm.backend's, made after agreement.
    auto comm = make_mpi_communicator();
    const bool root = comm->rank() == 0;
    if (!root) spdlog::set_level(spdlog::level::warn);
    RunConfig cfg;
    std::string dir = args->run_dir.empty() ? "runs/" + stem(args->config) : args->run_dir;
    // Everything that can be checked before a model is loaded, every problem
    // listed: the config, the files it names, the run directory (rank 0 writes it).
    std::vector<std::string> problems;
    bool config_ok = false;
    try {
      cfg = load_run_config(args->config, args->sets);
      config_ok = true;
      problems = check_run_inputs(cfg);
      const std::string device_problem =
          check_device_and_backend(cfg.model.device, cfg.comm.backend);
      if (!device_problem.empty()) problems.push_back(device_problem);
    } catch (const ConfigError& e) {
      problems = e.problems();
    } catch (const InputError& e) {
      problems.push_back(e.what());
    }
    if (root)
      for (auto& p : check_run_directory(dir, config_ok ? checkpoint_bytes_estimate(cfg) : 0))
        problems.push_back(std::move(p));
    if (root && config_ok && !cfg.checkpoint.dir.empty())  // elsewhere than the run directory
      for (auto& p : check_run_directory(cfg.checkpoint.dir, checkpoint_bytes_estimate(cfg),
                                         "checkpoint.dir"))
        problems.push_back(std::move(p));
    std::string error;
    for (const auto& p : problems) error += (error.empty() ? "" : "\n") + p;
    agree_on_errors(*comm, error);  // the first collective of the run
    comm->set_timeout(cfg.comm.timeout_s);
    agree_on_value(*comm, "config", fnv1a(to_yaml(cfg)));
    if (root) add_log_file(dir + "/log.txt", /*truncate=*/args->resume.empty());
    spdlog::info("sparc train: config {} method {} setting {} on {} rank(s) -> {}; {}", args->config,
                 method_name(cfg.method), cfg.setting, comm->size(), dir, thread_choice_text());
    DataPlane plane = open_data_plane(cfg.model.device, cfg.comm.backend, cfg.comm.timeout_s);
    cfg.model.device = plane.device;
    ContinualTrainer trainer(cfg, dir, plane.data_or(comm.get()), comm.get());
    if (!args->resume.empty()) trainer.resume(args->resume);
    trainer.run();
    spdlog::info("results: {}/results.json", dir);
    return kExitOk;
  }});
}

void add_eval_command(CLI::App& app, std::vector<Command>& commands) {
  auto run_dir = std::make_shared<std::string>();
  auto* sub = app.add_subcommand("eval", "Re-evaluate a finished run from its run directory");
  sub->add_option("--run-dir", *run_dir, "the run directory of a finished sparc train")->required();
  commands.push_back({sub, [run_dir]() {
    const std::string dir = *run_dir;
    RunConfig cfg = load_run_config(dir + "/config.yaml");
    ContinualTrainer trainer(cfg, dir);
    RunResults r = trainer.evaluate_saved();
    nlohmann::json out = {{"tasks", nlohmann::json::array()}, {"accuracy", r.accuracy.back()}};
    for (const auto& t : cfg.tasks) out["tasks"].push_back(t.name);
    out["routing_accuracy"] = r.routing_accuracy >= 0 ? nlohmann::json(r.routing_accuracy) : nlohmann::json();
    // Compare with the last row the run recorded.
    const std::string results_path = dir + "/results.json";
    if (file_exists(results_path)) {
      nlohmann::json recorded;
      try {
        recorded = nlohmann::json::parse(read_text_file(results_path));
      } catch (const nlohmann::json::exception& e) {
        throw InputError(results_path, "invalid JSON: " + json_error_text(e.what()));
      }
      const auto rows = recorded.is_object() ? recorded.find("accuracy_matrix") : recorded.end();
      if (rows == recorded.end() || !rows->is_array() || rows->empty())
        throw InputError(results_path, "no 'accuracy_matrix' rows: not the results.json of a "
                                       "finished sparc train run");
      out["matches_results"] = rows->back() == out["accuracy"];
    }
    std::cout << out.dump() << "\n";
    return kExitOk;
  }});
}

}  // namespace sparc::cli
