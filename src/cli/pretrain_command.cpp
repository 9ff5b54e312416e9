// sparc pretrain: a small base model trained on plain text (see train/pretrain.h).
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "comm/agreement.h"
#include "comm/communicator_factory.h"
#include "core/error.h"
#include "core/file.h"
#include "core/hash.h"
#include "core/log.h"
#include "config/pretrain_config.h"
#include "train/pretrain.h"

namespace sparc::cli {

void add_pretrain_command(CLI::App& app, std::vector<Command>& commands) {
  struct Args {
    std::string config;
    std::vector<std::string> sets;
    bool json = false;
  };
  auto args = std::make_shared<Args>();
  auto* sub = app.add_subcommand(
      "pretrain", "Train a small llama on plain text (next-token objective, data parallel) and "
                  "write it as a Hugging Face directory; reused when config and data are unchanged");
  sub->add_option("--config", args->config, "pretrain configuration (YAML)")->required();
  sub->add_option("--set", args->sets, "override a config key: key.path=value (repeatable)");
  sub->add_flag("--json", args->json, "print the result as one JSON line on stdout");
  commands.push_back({sub, [args]() {
    // MPI is the control plane (agreement, cache decision, watchdog); the
    // data plane (grad, eval) is comm.backend's, opened after agreement.
    auto comm = make_mpi_communicator();
    const bool root = comm->rank() == 0;
    if (!root) spdlog::set_level(spdlog::level::warn);
    PretrainConfig cfg;
    std::string error;
    try {
      cfg = load_pretrain_config(args->config, args->sets);
      for (const auto& t : cfg.text)
        if (!file_exists(t)) throw InputError(t, "text file not found (data.text)");
      // cuda or nccl in a binary without them: every rank exits 2 at the
      // agreement below, before any other collective.
      error = check_device_and_backend(cfg.device, cfg.backend);
    } catch (const InputError& e) {
      error = e.what();
    }
    agree_on_errors(*comm, error);  // the first collective
    comm->set_timeout(cfg.timeout_s);
    agree_on_value(*comm, "config", fnv1a(to_yaml(cfg)));
    DataPlane plane = open_data_plane(cfg.device, cfg.backend, cfg.timeout_s);
    cfg.device = plane.device;
    PretrainResult r = pretrain(cfg, plane.data_or(comm.get()), comm.get());
    if (!root) return kExitOk;
    nlohmann::json out = {{"out", r.out},
                          {"cached", r.cached},
                          {"steps", r.steps},
                          {"parameters", r.parameters},
                          {"initial_val_loss", r.initial_val_loss},
                          {"final_val_loss", r.final_val_loss},
                          {"tokens_per_s", r.tokens_per_s},
                          {"seconds", r.seconds},
                          {"world_size", comm->size()}};
    if (args->json) std::cout << out.dump() << std::endl;
    return kExitOk;
  }});
}

}  // namespace sparc::cli
