// sparc demo: the whole product on real data in one command (src/demo/demo.h).
#include "cli/commands.h"
#include "demo/demo.h"

namespace sparc::cli {

void add_demo_command(CLI::App& app, std::vector<Command>& commands) {
  auto o = std::make_shared<demo::Options>();
  auto* sub = app.add_subcommand(
      "demo",
      "Run the whole product on real data: prepare data, pretrain the base model (cached), train "
      "sparc, sparc+lora, prompt, lora and full task- and domain-incrementally, write a report");
  sub->add_option("--out", o->out, "output directory (runs, logs, configs, report.html)")
      ->capture_default_str();
  sub->add_option("--data", o->data, "where the prepared data goes")->capture_default_str();
  sub->add_option("--models", o->models, "where the pretrained base model goes (demo-base/)")
      ->capture_default_str();
  sub->add_option("--sources", o->sources,
                  "fetched npm sources (default: $SPARC_SOURCES, else ~/.cache/sparc/sources)");
  sub->add_option("--ranks", o->ranks, "data-parallel ranks: pretraining and training run under "
                                       "mpirun -n N")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  sub->add_option("--threads-per-rank", o->threads, "intra-op and BLAS threads of each rank")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  sub->add_option("--methods", o->methods, "methods to train")
      ->check(CLI::IsMember(demo::method_names()))
      ->delimiter(',')
      ->capture_default_str();
  sub->add_option("--settings", o->settings, "settings to run")
      ->check(CLI::IsMember(demo::kSettings))
      ->delimiter(',')
      ->capture_default_str();
  sub->add_option("--pretrain-set", o->pretrain_sets,
                  "override a key of the pretraining config (repeatable), e.g. train.steps=100");
  sub->add_option("--train-set", o->train_sets,
                  "override a key of every training run's config (repeatable), e.g. "
                  "train.epochs=1");
  sub->add_option("--device", o->device,
                  "model.device of the pretraining and every training run: cpu, cuda, cuda:N or "
                  "auto (default: the configs', cpu)");
  sub->add_option("--backend", o->backend,
                  "comm.backend of the pretraining and every training run (default: the "
                  "configs', auto: nccl on GPUs, else mpi)")
      ->check(CLI::IsMember({"auto", "mpi", "nccl"}));
  commands.push_back({sub, [o]() { return demo::run_demo(*o); }});
}

}  // namespace sparc::cli
