// sparc inspect CHECKPOINT [--json] and sparc export-peft: read a checkpoint
// (its checksum verified first) without loading the model.
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "ckpt/checkpoint.h"
#include "ckpt/peft_export.h"
#include "cli/commands.h"
#include "core/error.h"
#include "core/file.h"
#include "core/log.h"

namespace sparc::cli {
namespace {

// A checkpoint file, or the newest valid one of a directory.
std::string resolve_checkpoint(const std::string& path) {
  if (is_directory(path)) {
    std::vector<std::string> skipped;
    std::string chosen = CheckpointDir(path, 1).newest_valid(&skipped);
    for (const auto& s : skipped) spdlog::warn("checkpoint skipped: {}", s);
    if (chosen.empty()) throw InputError(path, "no valid checkpoint in this directory");
    return chosen;
  }
  const std::string why = verify_checkpoint(path);
  if (!why.empty()) throw InputError(path, why);
  return path;
}

std::vector<std::int64_t> shape(const torch::Tensor& t) {
  return t.defined() ? t.sizes().vec() : std::vector<std::int64_t>{};
}

nlohmann::json summary(const std::string& path, const TrainingState& s) {
  using nlohmann::json;
  json tasks = json::array();
  for (size_t i = 0; i < s.tasks.size(); ++i) {
    std::string status = i < s.library.size() ? "done"
                         : (s.in_task && std::int64_t(i) == s.task) ? "in progress"
                                                                   : "pending";
    json t = {{"name", s.tasks[i]}, {"status", status}};
    if (i < s.subspaces.size())
      t["explained_variance_ratio"] = s.subspaces[i].subspace.explained_variance_ratio;
    const TaskRecord* e = i < s.library.size() ? &s.library[i]
                        : status == "in progress" ? &s.current
                                                  : nullptr;
    if (e) {
      t["reused_from"] = e->reused_from >= 0 ? json(s.tasks[e->reused_from]) : json();
      t["similarities"] = e->similarities;
      t["orthogonal_directions"] = e->orth_directions;
      t["z_shape"] = shape(e->z);
      t["prompt_shape"] = shape(e->prompt);
      t["lora_modules"] = e->lora.size();
    }
    tasks.push_back(t);
  }
  char fp[32];
  std::snprintf(fp, sizeof fp, "%016llx", (unsigned long long)s.model_fingerprint);
  return {
      {"file", path},
      {"format_version", kCheckpointFormatVersion},
      {"method", s.method},
      {"setting", s.setting},
      {"world_size", s.world_size},
      {"model", {{"path", s.model_path}, {"arch", s.arch}, {"dim", s.dim}, {"n_layers", s.n_layers},
                 {"n_heads", s.n_heads}, {"n_kv_heads", s.n_kv_heads}, {"vocab_size", s.vocab_size},
                 {"fingerprint", fp}}},
      {"cursor", {{"task", s.task}, {"in_task", s.in_task}, {"epoch", s.epoch},
                  {"step_in_epoch", s.step_in_epoch}, {"task_step", s.task_step},
                  {"task_total_steps", s.task_total_steps}, {"sample_offset", s.sample_offset},
                  {"global_step", s.global_step}}},
      {"tasks", tasks},
      {"accuracy_matrix", s.accuracy},
      {"zero_shot", s.zero_shot},
      {"ppl_before", s.ppl_before},
      {"optimizer_tensors", s.params.size()},
      {"shared_lora_modules", s.shared_lora.size()},
      {"weights", s.weights.size()},
      {"metric_lines", s.metric_history.size()},
  };
}

}  // namespace

void add_inspect_command(CLI::App& app, std::vector<Command>& commands) {
  struct Args {
    std::string path;
    bool json = false;
  };
  auto args = std::make_shared<Args>();
  auto* sub = app.add_subcommand("inspect", "Summarise a checkpoint (checksum verified first)");
  sub->add_option("checkpoint", args->path, "a checkpoint file (.h5) or a checkpoint directory")
      ->required();
  sub->add_flag("--json", args->json, "print JSON instead of text");
  commands.push_back({sub, [args]() {
    const std::string path = resolve_checkpoint(args->path);
    const TrainingState s = read_checkpoint_file(path);
    const auto j = summary(path, s);
    if (args->json) {
      std::cout << j.dump(2) << "\n";
      return kExitOk;
    }
    std::cout << "checkpoint " << path << " (format " << kCheckpointFormatVersion
              << ", checksum ok)\n";
    std::cout << "  method " << s.method << ", " << s.setting << ", written by " << s.world_size
              << " rank(s)\n";
    std::cout << "  model " << s.model_path << " (" << s.arch << ", D=" << s.dim << ", "
              << s.n_layers << " layers, fingerprint " << j["model"]["fingerprint"].get<std::string>()
              << ")\n";
    std::cout << "  cursor: global step " << s.global_step << ", ";
    if (s.in_task)
      std::cout << "task " << s.task << " '" << s.tasks[s.task] << "' at step " << s.task_step
                << "/" << s.task_total_steps << " (epoch " << s.epoch + 1 << ")\n";
    else if (size_t(s.task) < s.tasks.size())
      std::cout << "next task " << s.task << " '" << s.tasks[s.task] << "'\n";
    else
      std::cout << "every task done\n";
    for (const auto& t : j["tasks"]) {
      std::cout << "  task " << t["name"].get<std::string>() << ": " << t["status"].get<std::string>();
      if (t.contains("reused_from") && !t["reused_from"].is_null())
        std::cout << ", reused from " << t["reused_from"].get<std::string>();
      if (t.contains("lora_modules") && t["lora_modules"].get<int>() > 0)
        std::cout << ", " << t["lora_modules"].get<int>() << " LoRA modules";
      std::cout << "\n";
    }
    for (size_t i = 0; i < s.accuracy.size(); ++i) {
      std::cout << "  accuracy after " << s.tasks[i] << ":";
      for (double a : s.accuracy[i]) std::printf(" %.4f", a), std::fflush(stdout);
      std::cout << "\n";
    }
    std::cout << "  optimizer tensors " << s.params.size() << ", metric lines "
              << s.metric_history.size() << "\n";
    return kExitOk;
  }});
}

void add_export_peft_command(CLI::App& app, std::vector<Command>& commands) {
  struct Args {
    std::string checkpoint, task, out;
  };
  auto args = std::make_shared<Args>();
  auto* sub = app.add_subcommand(
      "export-peft", "Write a task's adapters in the Hugging Face PEFT layout");
  sub->add_option("--checkpoint", args->checkpoint, "a checkpoint file or directory")->required();
  sub->add_option("--task", args->task, "a finished task of the checkpoint")->required();
  sub->add_option("--out", args->out, "output directory")->required();
  commands.push_back({sub, [args]() {
    const std::string path = resolve_checkpoint(args->checkpoint);
    const TrainingState s = read_checkpoint_file(path);
    for (const auto& dir : export_peft(s, args->task, args->out)) std::cout << dir << "\n";
    return kExitOk;
  }});
}

}  // namespace sparc::cli
