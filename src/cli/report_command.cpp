// sparc report: one self-contained HTML page comparing finished runs.
#include <iostream>

#include "cli/commands.h"
#include "core/error.h"
#include "report/html_report.h"

namespace sparc::cli {

void add_report_command(CLI::App& app, std::vector<Command>& commands) {
  struct Args {
    std::vector<std::string> run_dirs;
    std::string out = "report.html";
  };
  auto args = std::make_shared<Args>();
  auto* sub = app.add_subcommand(
      "report", "Write one HTML page (inline SVG, no network) comparing finished runs");
  sub->add_option("run_dirs", args->run_dirs, "run directories written by `sparc train`")
      ->required();
  sub->add_option("--out", args->out, "output file")->capture_default_str();
  commands.push_back({sub, [args]() {
    report::write_report(args->run_dirs, args->out);
    std::cout << "report: " << args->out << " (" << args->run_dirs.size() << " run"
              << (args->run_dirs.size() == 1 ? "" : "s") << ")\n";
    return kExitOk;
  }});
}

}  // namespace sparc::cli
