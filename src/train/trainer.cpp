// The coordinator: the order of a continual run, top to bottom.
#include "train/trainer.h"

#include <unistd.h>

#include <cstdio>

#include "ckpt/checkpoint.h"
#include "core/error.h"
#include "core/file.h"
#include "core/storage.h"
#include "comm/agreement.h"
#include "model/fingerprint.h"
#include "core/log.h"
#include "sparc/lora_sites.h"
#include "sparc/task_library.h"
#include "train/evaluator.h"
#include "train/run_context.h"
#include "train/run_state.h"
#include "train/task_loop.h"

namespace sparc {
namespace {

// Routing accuracy over every test example of the run (domain-incremental).
double routing_accuracy(const RunResults& r, std::int64_t routed_right) {
  std::int64_t total = 0;
  for (auto n : r.test_sizes) total += n;
  return double(routed_right) / double(total);
}

}  // namespace

ContinualTrainer::ContinualTrainer(RunConfig config, std::string run_dir, Communicator* comm,
                                   Communicator* control)
    : ctx_(std::make_unique<RunContext>()) {
  ctx_->cfg = std::move(config);
  ctx_->run_dir = std::move(run_dir);
  ctx_->ranks.comm = comm;
  ctx_->ranks.control = control;
  ctx_->method = make_method(ctx_->cfg.method);
  ctx_->progress_line = ::isatty(STDERR_FILENO) != 0;
}

ContinualTrainer::~ContinualTrainer() = default;

const std::vector<TaskRecord>& ContinualTrainer::library() const { return ctx_->library; }
const Transformer& ContinualTrainer::model() const { return *ctx_->model; }

RunResults ContinualTrainer::run() {
  RunContext& c = *ctx_;
  if (c.is_root()) {
    make_directories(c.run_dir);
    write_file(c.run_dir + "/config.yaml", to_yaml(c.cfg));
    c.metrics_out.open(c.run_dir + "/metrics.jsonl");
    if (!c.metrics_out) throw StorageError(c.run_dir + "/metrics.jsonl: " + errno_text("cannot create"));
  }
  torch::manual_seed(c.cfg.seed);  // nothing should draw from it; set for safety

  load_inputs(c);
  // ---- checkpoint set-up and resume hook (SPEC 4) ----
  c.fingerprint = model_fingerprint(c.cfg.model.path);
  c.ckpt_dir = std::make_unique<CheckpointDir>(
      c.cfg.checkpoint.dir.empty() ? c.run_dir + "/checkpoints" : c.cfg.checkpoint.dir,
      c.cfg.checkpoint.keep);
  RunResults r;
  std::int64_t routed_right = 0;
  c.results_so_far = &r;
  c.routed_right_so_far = &routed_right;
  size_t first_task = 0;
  if (c.resumed) {
    first_task = restore_run(c, r, routed_right);
    if (!c.resumed->in_task) c.resumed.reset();
  } else {  // a fresh run: subspaces, zero-shot row, perplexity before
    compute_subspaces(c);
    for (size_t j = 0; j < c.data.size(); ++j) {
      r.test_sizes.push_back(std::int64_t(c.data[j].test.size()));
      r.zero_shot.push_back(accuracy_with(c, j, nullptr));
      spdlog::info("task '{}': zero-shot accuracy {:.4f} ({} test examples)", c.data[j].name,
                   r.zero_shot.back(), c.data[j].test.size());
    }
    r.ppl_before = perplexity(c);
    c.method->begin_run(c.method_context(), c.shared_lora);
  }
  r.model_params = c.model->parameter_count();
  r.trainable_params = c.method->trainable_per_task(c.cfg, *c.model);

  for (size_t t = first_task; t < c.data.size(); ++t) {
    TaskRecord entry;
    if (c.resumed) {  // resume hook: the interrupted task continues from its saved state
      entry = restore_current_task(c);
    } else {
      entry = c.method->initial_record(c.method_context(), t, c.data[t].name, c.subspaces[t],
                                       c.is_root());
      // The coordinator's initialisation is the one every rank trains from.
      if (entry.z.defined()) {
        c.ranks.from_root(entry.z, CommTag::kControl);
        entry.z_init = entry.z.clone();
        entry.prompt = prompt_embeddings(entry.z, entry.subspace).to(torch::kFloat32);
      } else if (entry.prompt.defined()) {
        c.ranks.from_root(entry.prompt, CommTag::kControl);
      }
    }
    train_task(c, t, entry);
    c.library.push_back(std::move(entry));
    r.accuracy.push_back(evaluate_row(c, t, &routed_right));
    std::string row;
    for (double a : r.accuracy.back()) row += fmt::format(" {:.4f}", a);
    spdlog::info("after task '{}': accuracy{}", c.data[t].name, row);
    // ---- checkpoint hook: every task end; a stop request takes effect here too ----
    const bool stop = agree_on_stop(c);
    checkpoint_agreed(c, [&] { return capture(c, nullptr); }, true, stop);
    if (stop) {
      throw StopRequested("stopped by a signal after task '" + c.data[t].name +
                          "'; resume with --resume auto");
    }
  }
  if (routes_examples(c)) {
    r.routing_accuracy = routing_accuracy(r, routed_right);
    spdlog::info("routing accuracy {:.4f}", r.routing_accuracy);
  }
  install_lora(*c.model, c.shared_lora);
  r.ppl_after = perplexity(c);
  r.metrics = compute_metrics(r.accuracy, r.zero_shot);
  spdlog::info("ACC {:.4f} BWT {:+.4f} FWT {:+.4f} forgetting {:.4f} ppl {:.4f} -> {:.4f}",
               r.metrics.acc, r.metrics.bwt, r.metrics.fwt, r.metrics.forgetting, r.ppl_before,
               r.ppl_after);
  const std::string error = root_writes_agreed(c, [&] {
    const std::string library = c.run_dir + "/library.safetensors";
    try {
      std::vector<std::pair<std::string, torch::Tensor>> weights;
      if (c.cfg.trains_weights()) weights = c.model->named_weights();
      save_library(library, c.library, c.shared_lora, weights);
    } catch (const InputError& e) {  // the writer's message names the file and errno
      std::remove(library.c_str());
      throw StorageError(e.what());
    }
    write_results_json(c.run_dir + "/results.json", c.cfg, r, c.library);
  });
  if (!error.empty())
    throw StorageError("the run finished but its results could not be written: " + error, true);
  return r;
}

void ContinualTrainer::resume(const std::string& spec) { choose_checkpoint(*ctx_, spec); }

ContinualTrainer::StepBench ContinualTrainer::bench_steps(int steps) {
  RunContext& c = *ctx_;
  load_inputs(c);
  compute_subspaces(c);
  c.method->begin_run(c.method_context(), c.shared_lora);
  TaskRecord entry =
      c.method->initial_record(c.method_context(), 0, c.data[0].name, c.subspaces[0], false);
  if (c.ranks.comm) c.ranks.comm->reset_counters();
  const double waited_before = c.model->gather_wait_seconds();
  const std::int64_t vocab_before = c.model->vocab_bytes_sent();
  c.step_limit = steps + 1;  // the first step warms up and is not timed
  c.progress_line = false;
  train_task(c, 0, entry);
  StepBench b;
  b.rss_before_model_kb = c.rss_before_model_kb;
  b.steps = c.timed_steps;
  b.trainable_params = c.method->trainable_per_task(c.cfg, *c.model);
  if (b.steps == 0) return b;
  b.ms_per_step = 1000 * c.timed_seconds / double(b.steps);
  b.tokens_per_s = double(c.timed_tokens) / c.timed_seconds;
  const double all_steps = double(b.steps + 1);
  if (c.ranks.comm) {
    b.grad_bytes_per_step = double(c.ranks.comm->counters(CommTag::kGrad).bytes) / all_steps;
    b.gather_bytes_per_step = double(c.ranks.comm->counters(CommTag::kGather).bytes) / all_steps;
    b.gather_wait_ms_per_step = 1000 * (c.model->gather_wait_seconds() - waited_before) / all_steps;
    b.vocab_bytes_per_step = double(c.model->vocab_bytes_sent() - vocab_before) / all_steps;
  }
  b.mean_example_tokens =
      double(c.timed_tokens) / double(c.timed_examples) - double(c.cfg.prompt.length);
  return b;
}

RunResults ContinualTrainer::evaluate_saved() {
  RunContext& c = *ctx_;
  load_inputs(c);
  const std::string path = c.run_dir + "/library.safetensors";
  StoredLibrary lib = load_library(path, c.data.size(), c.model->device(),
                                   c.cfg.lora.alpha / c.cfg.lora.rank);
  c.library = std::move(lib.tasks);
  c.shared_lora = std::move(lib.shared_lora);
  if (c.cfg.trains_weights())
    restore_weights(*c.model, lib.weights, [&](const std::string& name) {
      return InputError(path, "missing trained weight 'weights." + name + "'");
    });
  install_lora(*c.model, c.shared_lora);
  RunResults r;
  std::int64_t routed_right = 0;
  for (const auto& d : c.data) r.test_sizes.push_back(std::int64_t(d.test.size()));
  r.accuracy.push_back(evaluate_row(c, c.data.size() - 1, &routed_right));
  if (routes_examples(c)) r.routing_accuracy = routing_accuracy(r, routed_right);
  return r;
}

}  // namespace sparc
