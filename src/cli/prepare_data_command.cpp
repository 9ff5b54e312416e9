// sparc prepare-data: real task data and the pretraining corpus from the
// sources scripts/setup.sh installs (see docs/data.md).
#include <spdlog/spdlog.h>

#include <chrono>

#include "cli/commands.h"
#include "core/error.h"
#include "prepare/prepare.h"

namespace sparc::cli {

void add_prepare_data_command(CLI::App& app, std::vector<Command>& commands) {
  struct Args {
    std::string name, out, sources;
  };
  auto args = std::make_shared<Args>();
  auto* sub = app.add_subcommand(
      "prepare-data",
      "Build train/val/test JSONL splits of the real tasks and the pretraining corpus");
  std::string names;
  for (const std::string& n : prepare::dataset_names()) names += n + " | ";
  sub->add_option("name", args->name, names + "corpus | all")->required();
  sub->add_option("--out", args->out, "output directory")->required();
  sub->add_option("--sources", args->sources,
                  "directory of the fetched npm sources (default: $SPARC_SOURCES, else "
                  "~/.cache/sparc/sources); WordNet: <sources>/wordnet if present, else "
                  "/usr/share/wordnet");
  commands.push_back({sub, [args]() {
    const auto start = std::chrono::steady_clock::now();
    const prepare::SourcePaths sources = prepare::resolve_sources(args->sources);
    spdlog::info("prepare-data {}: sources {} (WordNet {}) -> {}", args->name, sources.root,
                 sources.wordnet, args->out);
    prepare::prepare_data(args->name, sources, args->out,
                          [](const std::string& line) { spdlog::info("{}", line); });
    const double s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    spdlog::info("prepare-data {}: done in {:.1f} s", args->name, s);
    return kExitOk;
  }});
}

}  // namespace sparc::cli
