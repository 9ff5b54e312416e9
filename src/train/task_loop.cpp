#include "train/task_loop.h"

#include <spdlog/spdlog.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/fault.h"
#include "core/file.h"
#include "core/storage.h"
#include "core/random.h"
#include "comm/agreement.h"
#include "sparc/lora_sites.h"
#include "sparc/random_streams.h"
#include "train/evaluator.h"
#include "train/gradient_reducer.h"
#include "train/run_state.h"
#include "train/schedule.h"

namespace sparc {
namespace {

using Clock = std::chrono::steady_clock;

bool is_logged(const RunContext& c, std::int64_t step, std::int64_t total) {
  return (step + 1) % c.cfg.train.log_every == 0 || step + 1 == total;
}

void log_step(RunContext& c, size_t t, std::int64_t step, std::int64_t total, double loss,
              double lr, std::int64_t tokens, Clock::time_point start) {
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  const double tps = elapsed > 0 ? double(tokens) / elapsed : 0;
  const bool logged = is_logged(c, step, total);
  if (!c.is_root()) return;
  const auto& name = c.data[t].name;
  if (logged) {
    nlohmann::json line = {{"task", name}, {"step", step + 1}, {"loss", loss},
                           {"lr", lr}, {"tokens_per_s", tps}};
    errno = 0;
    c.metrics_out << line.dump() << "\n" << std::flush;
    if (!c.metrics_out)  // rank 0 alone: the CLI aborts the other ranks
      throw StorageError(c.run_dir + "/metrics.jsonl: " +
                         (errno != 0 ? errno_text("write") : std::string("write failed")));
    c.metric_history.push_back(line.dump());
  }
  const double eta = step + 1 < total ? elapsed / double(step + 1) * double(total - step - 1) : 0;
  if (c.progress_line) {
    std::fprintf(stderr, "\r[task %zu/%zu %s] step %lld/%lld loss %.4f %.0f tok/s ETA %s   ",
                 t + 1, c.data.size(), name.c_str(), (long long)(step + 1), (long long)total, loss,
                 tps, format_eta(eta).c_str());
  } else if (logged) {
    spdlog::info("task {}/{} '{}' step {}/{} loss {:.4f} lr {:.3g} {:.0f} tok/s ETA {}", t + 1,
                 c.data.size(), name, step + 1, total, loss, lr, tps, format_eta(eta));
  }
}

}  // namespace

void train_task(RunContext& c, size_t t, TaskRecord& entry) {
  const auto& cfg = c.cfg;
  const auto& tc = cfg.train;
  const Method& method = *c.method;
  Trainables tr = method.begin_task(entry, c.shared_lora, *c.model);
  install_lora(*c.model, *tr.adapters);

  std::vector<torch::optim::OptimizerParamGroup> groups;
  const double lora_lr = cfg.lora.lr > 0 ? cfg.lora.lr : tc.lr;
  auto options = [&](double lr) {
    return std::make_unique<torch::optim::AdamWOptions>(
        torch::optim::AdamWOptions(lr).weight_decay(tc.weight_decay));
  };
  if (!tr.prompt_group.empty()) groups.emplace_back(tr.prompt_group, options(tc.lr));
  if (!tr.lora_group.empty()) groups.emplace_back(tr.lora_group, options(lora_lr));
  torch::optim::AdamW optimizer(groups, torch::optim::AdamWOptions(tc.lr).weight_decay(tc.weight_decay));
  std::vector<double> base_lrs;
  for (auto& g : optimizer.param_groups()) base_lrs.push_back(g.options().get_lr());
  std::vector<torch::Tensor> all_params;
  for (auto& g : optimizer.param_groups())
    all_params.insert(all_params.end(), g.params().begin(), g.params().end());
  const std::vector<std::string>& param_names = tr.names;

  const auto penalty = method.penalty(c.library, tc.lambda_orth);

  const auto& train = c.data[t].train;
  const std::int64_t n = std::int64_t(train.size());
  const std::int64_t per_step = std::int64_t(tc.batch_size) * tc.grad_accum;
  const std::int64_t steps_per_epoch = (n + per_step - 1) / per_step;
  const std::int64_t total = steps_per_epoch * tc.epochs;
  const auto& labels = c.data[t].label_tokens;
  std::int64_t step = 0;
  double best_val = -1;
  int bad_epochs = 0;
  std::vector<torch::Tensor> best_params;
  const auto start = Clock::now();
  std::int64_t tokens_seen = 0;
  // ---- resume hook: the optimizer state and data cursor of an interrupted task ----
  std::int64_t first_epoch = 0, first_s = 0;
  if (c.resumed && c.resumed->in_task && c.resumed->task == std::int64_t(t)) {
    restore_optimizer(optimizer, all_params, param_names, *c.resumed);
    first_epoch = c.resumed->epoch;
    first_s = c.resumed->step_in_epoch;
    step = c.resumed->task_step;
    best_val = c.resumed->best_val;
    bad_epochs = int(c.resumed->bad_epochs);
    for (const auto& b : c.resumed->best_params) best_params.push_back(b.to(c.model->device()));
    c.resumed.reset();
  }

  for (int epoch = int(first_epoch); epoch < tc.epochs && step != c.step_limit; ++epoch) {
    auto order = epoch_order(n, cfg.seed, t, std::uint64_t(epoch));
    for (std::int64_t s = epoch == first_epoch ? first_s : 0;
         s < steps_per_epoch && step != c.step_limit; ++s, ++step) {
      const auto step_start = Clock::now();
      for (size_t g = 0; g < base_lrs.size(); ++g)
        optimizer.param_groups()[g].options().set_lr(
            scheduled_lr(tc.schedule, base_lrs[g], step, total, tc.warmup_steps));
      optimizer.zero_grad();
      const std::int64_t first = s * per_step, stop = std::min(n, first + per_step);
      double loss_value = 0;
      std::int64_t step_tokens = 0;
      for (std::int64_t m = first; m < stop; m += tc.batch_size) {
        std::vector<const EncodedExample*> batch;
        DropoutKeys keys;
        keys.base = random_key({cfg.seed, t, kDropoutStream, std::uint64_t(step)});
        for (std::int64_t i = m; i < std::min(stop, m + tc.batch_size); ++i) {
          step_tokens += std::int64_t(train[order[i]].ids.size()) + cfg.prompt.length;
          if (!c.mine(i, first)) continue;  // data parallel: this rank's share
          batch.push_back(&train[order[i]]);
          keys.sample_ids.push_back(order[i]);
        }
        const bool add_penalty = penalty && m == first && c.is_root();
        // Layer sharding: a rank without examples in this micro-batch still
        // joins the gathers of its peers' forward and backward.
        if (batch.empty()) c.model->idle_pass(c.model->config().n_layers, true);
        if (batch.empty() && !add_penalty) continue;
        torch::Tensor prefix = method.prefix(entry);
        if (batch.empty()) {  // rank 0 still adds the penalty (once over all ranks)
          auto loss = penalty(entry);
          loss.backward();
          loss_value += loss.item<double>();
          continue;
        }
        c.model->set_dropout(&keys);
        auto scores = class_scores(c, batch, prefix, labels);
        c.model->set_dropout(nullptr);
        std::vector<std::int64_t> y;
        for (const auto* e : batch) y.push_back(e->label);
        // Sum over the step's examples / their count: the same gradient
        // whatever the micro-batching (and, later, the world size).
        auto loss = torch::nn::functional::cross_entropy(
                        scores, torch::tensor(y, torch::kLong).to(scores.device()),
                        torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum)) /
                    double(stop - first);
        if (add_penalty) loss = loss + penalty(entry);
        loss.backward();
        loss_value += loss.item<double>();
      }
      if (fault_point("step", ++c.steps_run, c.rank()))  // SPARC_FAULT=nan@step:N
        for (auto& p : all_params)
          if (p.grad().defined()) p.mutable_grad().fill_(std::nan(""));
      all_reduce_gradients(c.ranks, all_params);
      // A NaN or Inf on any rank is in the summed gradient on every rank:
      // all skip the step together, and stop after max_bad_steps in a row.
      if (!gradients_finite(all_params)) {
        ++c.bad_steps_in_a_row;
        ++c.skipped_steps;
        spdlog::warn("task '{}' step {}: non-finite gradient, step skipped ({} in a row, {} "
                     "in this run)",
                     c.data[t].name, step + 1, c.bad_steps_in_a_row, c.skipped_steps);
        if (c.bad_steps_in_a_row >= tc.max_bad_steps)
          throw AgreedError(cfg.source_path, std::to_string(c.bad_steps_in_a_row) +
                            " optimizer steps in a row had non-finite gradients "
                            "(train.max_bad_steps); stopped without writing over the last "
                            "checkpoint (lower train.lr, or resume with --resume auto)");
        optimizer.zero_grad();
        continue;
      }
      c.bad_steps_in_a_row = 0;
      if (c.world() > 1 && is_logged(c, step, total)) {  // the global loss, for the log only
        auto l = torch::tensor({loss_value}, torch::kFloat64);
        c.ranks.sum(l, CommTag::kControl);
        loss_value = l.item<double>();
      }
      if (tc.max_grad_norm > 0) torch::nn::utils::clip_grad_norm_(all_params, tc.max_grad_norm);
      optimizer.step();
      tokens_seen += step_tokens;
      if (c.step_limit > 0 && step > 0) {
        c.timed_seconds += std::chrono::duration<double>(Clock::now() - step_start).count();
        c.timed_steps += 1;
        c.timed_tokens += step_tokens;
        c.timed_examples += stop - first;
      }
      log_step(c, t, step, total, loss_value, optimizer.param_groups()[0].options().get_lr(),
               tokens_seen, start);
      // ---- checkpoint hook: cadence, and SIGTERM/SIGINT agreed by every rank ----
      if (c.ckpt_dir) {
        const bool stop_now = agree_on_stop(c);
        const auto every = cfg.checkpoint.every_steps;
        if (stop_now || (every > 0 && c.steps_run % every == 0)) {
          InTask it{t,         &entry, &optimizer, &all_params, &param_names, epoch, s + 1,
                    step + 1,  total,  std::min(n, (s + 1) * per_step), best_val, bad_epochs,
                    &best_params};
          // Every rank leaves only once rank 0's checkpoint is on disk (the
          // outcome's agreement waits for it): a launcher ends the job at
          // the first rank that exits.
          checkpoint_agreed(c, [&] { return capture(c, &it); }, false, stop_now);
        }
        if (stop_now)
          throw StopRequested("stopped by a signal after step " + std::to_string(c.steps_run) +
                              "; resume with --resume auto");
      }
    }
    if (tc.early_stop_patience > 0 && !c.data[t].validation.empty()) {
      torch::Tensor prefix = method.prefix(entry);
      if (prefix.defined()) prefix = prefix.detach();
      double val = double(count_correct(c, pointers(c.data[t].validation), prefix, labels)) /
                   double(c.data[t].validation.size());
      spdlog::info("task '{}' epoch {}: validation accuracy {:.4f}", c.data[t].name, epoch + 1, val);
      if (val > best_val) {
        best_val = val;
        bad_epochs = 0;
        best_params.clear();
        for (auto& p : all_params) best_params.push_back(p.detach().clone());
      } else if (++bad_epochs >= tc.early_stop_patience) {
        spdlog::info("task '{}': early stop after epoch {}", c.data[t].name, epoch + 1);
        break;
      }
    }
  }
  if (!best_params.empty()) {
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < all_params.size(); ++i) all_params[i].copy_(best_params[i]);
  }
  if (c.progress_line && c.is_root()) std::fprintf(stderr, "\n");
  method.end_task(entry, c.shared_lora, *c.model);
  install_lora(*c.model, c.shared_lora);
}

}  // namespace sparc
