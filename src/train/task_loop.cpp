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
#include "comm/exact_sum.h"
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
  // `bench step` has no run directory and so no metrics file: writing to the
  // unopened stream failed on rank 0 alone and left the other ranks waiting.
  if (logged && c.metrics_out.is_open()) {
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

// What one optimizer step's work units leave behind.
struct StepUnits {
  bool finite = true;      // every rank's gradients were finite (the same answer on every rank)
  double loss = 0;         // the step's loss; over every rank when `want_loss`, else this rank's share
  std::int64_t tokens = 0;  // tokens of the step's examples, prompt included, over every rank
};

// A unit's gradients as one flat f32 vector on `device` (prompt coefficients
// and adapters may live on different devices).
torch::Tensor unit_gradients(const std::vector<torch::Tensor>& params, torch::Device device) {
  std::vector<torch::Tensor> parts;
  const auto f32 = torch::TensorOptions(torch::kFloat32).device(device);
  for (const auto& p : params)
    parts.push_back(p.grad().defined() ? p.grad().reshape(-1).to(f32) : torch::zeros({p.numel()}, f32));
  return torch::cat(parts);
}

// One optimizer step's examples (sample ids, in step order) in fixed work
// units (SPEC 3): unit_size examples each, the same units whatever the
// world size, dealt round robin; each unit is padded to its own longest
// example, so its forward and backward have the same shapes on any rank.
// Deterministic runs add the units' gradients exactly (comm/exact_sum.h);
// otherwise each rank's float sum is all-reduced. Leaves the summed
// gradient in `params`' grads.
StepUnits run_step_units(RunContext& c, size_t t, std::int64_t step, const TaskRecord& entry,
                         const std::vector<std::int64_t>& examples,
                         const std::vector<std::int32_t>& labels, std::vector<torch::Tensor>& params,
                         bool want_loss) {
  const auto& cfg = c.cfg;
  const auto& train = c.data[t].train;
  const std::int64_t n = std::int64_t(examples.size()), size = cfg.train.unit_size;
  const std::int64_t units = (n + size - 1) / size;
  const bool exact = cfg.train.deterministic;
  StepUnits out;
  for (auto id : examples) out.tokens += std::int64_t(train[size_t(id)].ids.size()) + cfg.prompt.length;
  std::vector<std::int64_t> segments;
  for (const auto& p : params) segments.push_back(p.numel());
  ExactSum sum(segments, units);
  // Each unit's loss, kept where it was computed (no host sync per unit).
  auto slots = torch::zeros({units}, torch::TensorOptions(torch::kFloat64).device(c.model->device()));
  for (auto& p : params)
    if (p.grad().defined()) p.mutable_grad().zero_();
  const std::int64_t rounds = (units + c.world() - 1) / c.world();
  for (std::int64_t r = 0; r < rounds; ++r) {
    const std::int64_t u = r * c.world() + c.rank();
    // Layer sharding: a rank without a unit in this round still joins the
    // gathers of its peers' forward and backward.
    if (u >= units) {
      c.model->idle_pass(c.model->config().n_layers, true, Transformer::OutputUse::kRows);
      continue;
    }
    std::vector<const EncodedExample*> batch;
    std::vector<std::int64_t> y;
    DropoutKeys keys;
    keys.base = random_key({cfg.seed, t, kDropoutStream, std::uint64_t(step)});
    for (std::int64_t i = u * size; i < std::min(n, (u + 1) * size); ++i) {
      const auto id = examples[size_t(i)];
      batch.push_back(&train[size_t(id)]);
      keys.sample_ids.push_back(id);
      y.push_back(train[size_t(id)].label);
    }
    const torch::Tensor prefix = c.method->prefix(entry);
    c.model->set_dropout(&keys);
    auto scores = class_scores(c, batch, prefix, labels);
    c.model->set_dropout(nullptr);
    // Sum over the unit's examples / the step's count: units add to the
    // step's mean whatever their number per rank.
    auto loss = torch::nn::functional::cross_entropy(
                    scores, torch::tensor(y, torch::kLong).to(scores.device()),
                    torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum)) /
                double(n);
    loss.backward();
    slots[u] = loss.detach().to(torch::kFloat64);
    if (exact) {
      sum.add(unit_gradients(params, c.model->device()));
      for (auto& p : params)
        if (p.grad().defined()) p.mutable_grad().zero_();
    }
  }
  const bool fault = fault_point("step", ++c.steps_run, c.rank());  // SPARC_FAULT=nan@step:N
  if (exact) {
    if (fault) sum.poison();
    auto total = sum.reduce(c.ranks.comm, CommTag::kGrad);
    out.finite = total.defined();
    std::int64_t offset = 0;
    for (auto& p : params) {
      if (!out.finite) break;
      auto g = total.slice(0, offset, offset + p.numel()).view_as(p).to(p.options());
      if (p.grad().defined()) p.mutable_grad().copy_(g);
      else p.mutable_grad() = g;
      offset += p.numel();
    }
  } else {
    if (fault)
      for (auto& p : params)
        if (p.grad().defined()) p.mutable_grad().fill_(std::nan(""));
    all_reduce_gradients(c.ranks, params);
    out.finite = gradients_finite(params);
  }
  // The loss for the log: every unit's, added in unit order.
  Communicator* control = want_loss && c.world() > 1 ? &c.ranks.control_plane() : nullptr;
  out.loss = sum_in_unit_order(control, slots, CommTag::kControl);
  return out;
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
      const std::int64_t first = s * per_step, stop = std::min(n, first + per_step);
      std::vector<std::int64_t> examples;
      for (std::int64_t i = first; i < stop; ++i) examples.push_back(order[std::size_t(i)]);
      const StepUnits u = run_step_units(c, t, step, entry, examples, labels, all_params,
                                         is_logged(c, step, total));
      const std::int64_t step_tokens = u.tokens;
      double loss_value = u.loss;
      if (!u.finite) {
        // A NaN or Inf on any rank reached every rank: all skip the step
        // together, and stop after max_bad_steps in a row.
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
      if (penalty) {
        // The orthogonality penalty: the same on every rank, added once
        // after the reduction.
        auto loss = penalty(entry);
        if (loss.requires_grad()) {
          auto grads = torch::autograd::grad({loss}, all_params, {}, false, false, true);
          torch::NoGradGuard no_grad;
          for (size_t i = 0; i < all_params.size(); ++i)
            if (grads[i].defined()) all_params[i].mutable_grad().add_(grads[i]);
        }
        loss_value += loss.item<double>();
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
