// Subcommands register themselves on the application; main() parses the
// command line and runs the chosen one inside the single error boundary.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <vector>

namespace sparc::cli {

struct Command {
  CLI::App* app;
  std::function<int()> run;  // returns the exit code
};

void add_generate_command(CLI::App& app, std::vector<Command>& commands);
void add_tokenize_command(CLI::App& app, std::vector<Command>& commands);
void add_convert_command(CLI::App& app, std::vector<Command>& commands);
void add_random_model_command(CLI::App& app, std::vector<Command>& commands);
void add_train_command(CLI::App& app, std::vector<Command>& commands);
void add_eval_command(CLI::App& app, std::vector<Command>& commands);
void add_bench_command(CLI::App& app, std::vector<Command>& commands);
void add_pretrain_command(CLI::App& app, std::vector<Command>& commands);
void add_prepare_data_command(CLI::App& app, std::vector<Command>& commands);
void add_inspect_command(CLI::App& app, std::vector<Command>& commands);
void add_export_peft_command(CLI::App& app, std::vector<Command>& commands);
void add_report_command(CLI::App& app, std::vector<Command>& commands);
void add_demo_command(CLI::App& app, std::vector<Command>& commands);

}  // namespace sparc::cli
