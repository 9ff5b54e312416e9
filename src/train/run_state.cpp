#include "train/run_state.h"

#include <spdlog/spdlog.h>

#include <cstring>

#include "comm/agreement.h"
#include "model/fingerprint.h"
#include "core/error.h"
#include "core/file.h"
#include "core/storage.h"
#include "sparc/random_streams.h"

namespace sparc {
namespace {

// Copies for a checkpoint: the live tensors detached.
LoraSet detached(const LoraSet& set) {
  LoraSet out;
  for (const auto& [m, a] : set) {
    auto d = std::make_shared<LoraAdapter>(*a);
    d->a = a->a.detach();
    d->b = a->b.detach();
    out[m] = d;
  }
  return out;
}

TaskRecord detached(const TaskRecord& e) {
  TaskRecord c = e;
  if (c.z.defined()) c.z = c.z.detach();
  if (c.prompt.defined()) c.prompt = c.prompt.detach();
  c.lora = detached(e.lora);
  return c;
}

TaskRecord from_checkpoint(RunContext& c, const TaskRecord& saved, bool trainable) {
  TaskRecord e = saved;
  e.lora = adopt_lora(saved.lora, c.model->device(), c.cfg.lora.alpha / c.cfg.lora.rank,
                      c.cfg.lora.dropout, trainable);
  return e;
}

void save_checkpoint(RunContext& c, const TrainingState& st, bool task_end) {
  const std::string path = c.ckpt_dir->save(st, task_end, c.rank());
  spdlog::info("checkpoint {} (task {}, global step {})", path, st.task, st.global_step);
}

}  // namespace

TrainingState capture(RunContext& c, const InTask* it) {
  const auto& cfg = c.cfg;
  TrainingState st;
  st.config_yaml = to_yaml(cfg);
  st.model_fingerprint = c.fingerprint;
  st.model_path = cfg.model.path;
  const auto& mc = c.model->config();
  st.arch = module_naming(mc);  // the module names of PEFT exports (model_config.h)
  st.dim = mc.dim, st.n_layers = mc.n_layers, st.n_heads = mc.n_heads;
  st.n_kv_heads = mc.n_kv_heads, st.vocab_size = mc.vocab_size;
  st.method = method_name(cfg.method);
  st.setting = cfg.setting;
  st.seed = cfg.seed;
  st.world_size = c.world();
  for (const auto& d : c.data) st.tasks.push_back(d.name);
  st.rng_streams = {{"split", kSplitStream}, {"init", kInitStream}, {"lora", kLoraStream},
                    {"dropout", kDropoutStream}};
  for (size_t i = 0; i < c.subspaces.size(); ++i) {
    TaskRecord s;
    s.name = c.data[i].name;
    s.subspace = c.subspaces[i];
    st.subspaces.push_back(s);
  }
  for (const auto& e : c.library) st.library.push_back(detached(e));
  st.shared_lora = detached(c.shared_lora);
  if (cfg.trains_weights())
    for (auto& [name, w] : c.model->named_weights()) st.weights.emplace_back(name, w.detach());
  st.global_step = c.steps_run;
  st.task = std::int64_t(c.library.size());
  if (it) {
    st.in_task = true;
    st.task = std::int64_t(it->task);
    st.epoch = it->epoch, st.step_in_epoch = it->step_in_epoch, st.task_step = it->task_step;
    st.task_total_steps = it->total, st.sample_offset = it->sample_offset;
    st.current = detached(*it->record);
    for (size_t i = 0; i < it->params->size(); ++i) {
      CkptParam p;
      p.name = (*it->names)[i];
      const auto& param = (*it->params)[i];
      auto found = it->optimizer->state().find(c10::guts::to_string(param.unsafeGetTensorImpl()));
      if (found != it->optimizer->state().end()) {
        auto& adam = static_cast<torch::optim::AdamWParamState&>(*found->second);
        p.step = adam.step();
        p.exp_avg = adam.exp_avg();
        p.exp_avg_sq = adam.exp_avg_sq();
      }
      st.params.push_back(p);
    }
    st.best_val = it->best_val;
    st.bad_epochs = it->bad_epochs;
    st.best_params = *it->best_params;
  }
  if (c.results_so_far) {
    const RunResults& r = *c.results_so_far;
    st.accuracy = r.accuracy;
    st.zero_shot = r.zero_shot;
    st.test_sizes = r.test_sizes;
    st.ppl_before = r.ppl_before;
    st.trainable_params = r.trainable_params;
    st.model_params = r.model_params;
  }
  if (c.routed_right_so_far) st.routed_right = *c.routed_right_so_far;
  st.metric_history = c.metric_history;
  return st;
}

bool agree_on_stop(RunContext& c) {
  int local = stop_signal_received() ? 1 : 0;
  if (c.world() == 1) return local != 0;
  auto flag = torch::tensor({local}, torch::kInt32);
  c.ranks.max(flag, CommTag::kControl);
  return flag.item<int>() != 0;
}

std::string root_writes_agreed(RunContext& c, const std::function<void()>& write) {
  std::string error;
  if (c.is_root()) {
    try {
      write();
    } catch (const StorageError& e) {
      error = e.what();
    }
  }
  if (c.ranks.comm && c.world() > 1) {
    try {
      agree_on_errors(c.ranks.control_plane(), error);
    } catch (const AgreedError& e) {
      error = e.what();
    }
  }
  return error;
}

void checkpoint_agreed(RunContext& c, const std::function<TrainingState()>& state, bool task_end,
                       bool stopping) {
  const std::string error = root_writes_agreed(c, [&] { save_checkpoint(c, state(), task_end); });
  if (error.empty()) return;
  ++c.failed_checkpoints;
  if (stopping)
    throw StorageError("a stop was requested (SIGTERM/SIGINT) but its checkpoint could not be "
                       "written: " + error + "; resume with --resume auto",
                       true);
  if (c.cfg.checkpoint.on_write_error == "continue") {
    if (c.is_root())
      spdlog::warn("checkpoint write failed ({} in this run so far), training continues "
                   "without it (checkpoint.on_write_error: continue): {}",
                   c.failed_checkpoints, error);
    return;
  }
  throw StorageError("checkpoint write failed, training stopped (checkpoint.on_write_error: "
                     "stop): " + error + "; make room or fix the location, then resume with "
                     "--resume auto",
                     true);
}

void restore_optimizer(torch::optim::AdamW& optimizer, const std::vector<torch::Tensor>& params,
                       const std::vector<std::string>& names, const TrainingState& st) {
  if (st.params.size() != params.size())
    throw InputError("checkpoint", "holds optimizer state for " + std::to_string(st.params.size()) +
                                       " tensors, this run trains " + std::to_string(params.size()));
  for (size_t i = 0; i < params.size(); ++i) {
    const CkptParam& p = st.params[i];
    if (p.name != names[i])
      throw InputError("checkpoint", "optimizer tensor " + std::to_string(i) + " is '" + p.name +
                                         "', expected '" + names[i] + "'");
    if (!p.exp_avg.defined()) continue;  // no step taken yet
    auto state = std::make_unique<torch::optim::AdamWParamState>();
    state->step(p.step);
    state->exp_avg(p.exp_avg.to(params[i].device(), params[i].scalar_type()).clone());
    state->exp_avg_sq(p.exp_avg_sq.to(params[i].device(), params[i].scalar_type()).clone());
    optimizer.state()[c10::guts::to_string(params[i].unsafeGetTensorImpl())] = std::move(state);
  }
}

std::size_t restore_run(RunContext& c, RunResults& r, std::int64_t& routed_right) {
  const TrainingState& st = *c.resumed;
  c.subspaces.clear();
  for (const auto& s : st.subspaces) c.subspaces.push_back(s.subspace);
  c.library.clear();
  for (const auto& e : st.library) c.library.push_back(from_checkpoint(c, e, false));
  c.shared_lora = adopt_lora(st.shared_lora, c.model->device(),
                             c.cfg.lora.alpha / c.cfg.lora.rank, c.cfg.lora.dropout, true);
  if (c.cfg.trains_weights())
    restore_weights(*c.model, {st.weights.begin(), st.weights.end()}, [](const std::string& name) {
      return InputError("checkpoint", "no trained weight '" + name + "'");
    });
  r.accuracy = st.accuracy;
  r.zero_shot = st.zero_shot;
  r.test_sizes = st.test_sizes;
  r.ppl_before = st.ppl_before;
  routed_right = st.routed_right;
  c.metric_history = st.metric_history;
  c.steps_run = st.global_step;
  if (c.is_root())
    for (const auto& line : c.metric_history) c.metrics_out << line << "\n";
  c.metrics_out << std::flush;
  spdlog::info("resumed: {} of {} tasks done{}, global step {}", st.library.size(), c.data.size(),
               st.in_task ? fmt::format(", task '{}' at step {} of {}", c.data[st.task].name,
                                        st.task_step, st.task_total_steps)
                          : std::string(),
               st.global_step);
  return std::size_t(st.task);
}

TaskRecord restore_current_task(RunContext& c) {
  return from_checkpoint(c, c.resumed->current, true);
}

void choose_checkpoint(RunContext& c, const std::string& spec) {
  const std::string dir =
      c.cfg.checkpoint.dir.empty() ? c.run_dir + "/checkpoints" : c.cfg.checkpoint.dir;
  // Rank 0 picks the checkpoint (verifying checksums), every rank reads it.
  std::string error, chosen;
  if (c.is_root()) {
    try {
      if (spec == "auto" || is_directory(spec)) {
        CheckpointDir d(spec == "auto" ? dir : spec, c.cfg.checkpoint.keep);
        std::vector<std::string> skipped;
        chosen = d.newest_valid(&skipped);
        for (const auto& why : skipped) spdlog::warn("checkpoint skipped: {}", why);
        if (chosen.empty())
          spdlog::info("no valid checkpoint in {}: starting from the beginning", d.dir());
      } else {
        const std::string why = verify_checkpoint(spec);
        if (!why.empty()) throw InputError(spec, why);
        chosen = spec;
      }
    } catch (const InputError& e) {
      error = e.what();
    }
  }
  if (c.ranks.comm) {
    agree_on_errors(c.ranks.control_plane(), error);
    auto text = torch::zeros({4096}, torch::kUInt8);
    if (c.is_root()) std::memcpy(text.data_ptr(), chosen.data(), std::min<size_t>(chosen.size(), 4095));
    c.ranks.from_root(text, CommTag::kControl);
    chosen = reinterpret_cast<const char*>(text.data_ptr());
  } else if (!error.empty()) {
    throw InputError("", error);
  }
  if (chosen.empty()) return;
  try {
    auto st = std::make_unique<TrainingState>(read_checkpoint_file(chosen));
    auto problems = resume_conflicts(c.cfg, parse_run_config(st->config_yaml, chosen, ""),
                                     size_t(st->task) + (st->in_task ? 1 : 0));
    if (st->model_fingerprint != model_fingerprint(c.cfg.model.path))
      problems.insert(problems.begin(),
                      "the base model differs (fingerprint of " + c.cfg.model.path +
                          " does not match the checkpoint's " + st->model_path + ")");
    if (!problems.empty()) {
      std::string text;
      for (const auto& p : problems) text += "\n  " + p;
      throw InputError(chosen, "cannot resume this run from it:" + text);
    }
    c.resumed = std::move(st);
    spdlog::info("resuming from {}", chosen);
  } catch (const InputError& e) {
    error = e.what();
  }
  if (c.ranks.comm) agree_on_errors(c.ranks.control_plane(), error);
  else if (!error.empty()) throw InputError("", error);
}

}  // namespace sparc
