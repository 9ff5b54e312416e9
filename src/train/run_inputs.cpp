// The run's inputs: tokenizer, task data, model; and the small helpers of
// RunContext that every part uses.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>

#include "ckpt/checkpoint.h"
#include "comm/agreement.h"
#include "model/fingerprint.h"
#include "core/error.h"
#include "core/threads.h"
#include "core/file.h"
#include "core/random.h"
#include "data/jsonl_reader.h"
#include "model/model_loader.h"
#include "sparc/random_streams.h"
#include "train/results.h"
#include "train/run_context.h"
#include "train/schedule.h"

namespace sparc {
namespace {

// This process's resident memory now (VmRSS), in kilobytes; 0 if unknown.
std::int64_t resident_kb() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::atoll(line.c_str() + 6);
  return 0;
}

// The tokenizer comes first: the data is read and checked with it before
// the (possibly large) model is loaded, so input errors surface at once.
void load_tokenizer_only(RunContext& c) {
  const auto& m = c.cfg.model;
  if (m.tokenizer.empty() && !file_exists(m.path))  // the tokenizer would come from the model
    throw InputError(m.path, "model not found (model.path)");
  c.tok_path = m.tokenizer.empty() ? default_tokenizer_path(m.path) : m.tokenizer;
  if (c.tok_path.empty())
    throw InputError(c.cfg.source_path, "model.tokenizer: none given and none beside the model");
  c.tok = load_tokenizer(c.tok_path);
}

void load_model(RunContext& c) {
  const auto& cfg = c.cfg;
  const auto& m = cfg.model;
  auto source = open_model(m.path);
  ModelOptions opt;
  opt.dtype = parse_model_dtype(m.dtype, "model.dtype");
  opt.device = parse_model_device(m.device, "model.device");
  if (cfg.trains_weights() && opt.dtype != torch::kFloat32)
    throw InputError(cfg.source_path, "method " + method_name(cfg.method) +
                                          " trains the weights themselves and needs "
                                          "model.dtype f32 (trainable state stays f32)");
  if (c.tok->vocab_size() > source->config().vocab_size)
    throw InputError(c.tok_path, "tokenizer has " + std::to_string(c.tok->vocab_size()) +
                                     " tokens but the model's vocabulary has " +
                                     std::to_string(source->config().vocab_size));
  if (m.sharding == "layer" && c.world() > 1) opt.shard_comm = c.ranks.comm;
  opt.recompute = parse_recompute(m.recompute, "model.recompute");
  opt.activation_budget_bytes = m.activation_budget_mb << 20;
  // The last block at the scored positions only (~10% of a step), alike on
  // every rank and sharded or not, so the same bits hold at any world size.
  opt.prune_last_block = true;
  // Rows per vocabulary slice (model/vocab_shards.h). SPARC_VOCAB_SLICE_ROWS
  // overrides the default for tests, so that small vocabularies span several
  // slices; runs compared for the same bits must use the same value.
  if (const char* v = std::getenv("SPARC_VOCAB_SLICE_ROWS"); v != nullptr && *v != '\0')
    opt.vocab_slice_rows = std::max<std::int64_t>(1, std::atoll(v));
  c.rss_before_model_kb = resident_kb();
  c.model = std::make_unique<Transformer>(*source, opt);
  for (const auto& t : cfg.lora.targets)
    if (t == "gate" && c.model->config().arch == Arch::kGpt2)
      throw InputError(cfg.source_path, "lora.targets: gpt2 has no 'gate' projection");
  const std::int64_t step_examples = std::int64_t(cfg.train.batch_size) * cfg.train.grad_accum;
  const std::int64_t units = (step_examples + cfg.train.unit_size - 1) / cfg.train.unit_size;
  if (cfg.train.deterministic && units < c.world())
    spdlog::warn("a step's {} examples make {} unit(s) of train.unit_size {} for {} ranks: {} "
                 "rank(s) compute nothing in training{}; lower train.unit_size or raise "
                 "train.batch_size to use them",
                 step_examples, units, cfg.train.unit_size, c.world(), c.world() - units,
                 m.sharding == "layer" ? " (they join the gathers only)" : "");
  if (auto line = settle_threads_for_model(c.model->config().dim); !line.empty()) spdlog::info(line);
  spdlog::info("model {}: {} ({} parameters, {}{})", m.path, c.model->config().summary(),
               c.model->parameter_count(), m.dtype,
               c.model->sharded() ? fmt::format("; layer-sharded: {:.1f} MB of blocks and {:.1f} MB "
                                                "of embedding and output layer on this rank",
                                                double(c.model->resident_block_bytes()) / 1e6,
                                                double(c.model->resident_vocab_bytes()) / 1e6)
                                  : "");
}

std::vector<EncodedExample> encode_all(const TaskEncoder& enc, const std::vector<Example>& xs) {
  std::vector<EncodedExample> out;
  out.reserve(xs.size());
  for (const auto& x : xs) out.push_back(enc.encode(x));
  return out;
}

void load_data(RunContext& c) {
  const auto& cfg = c.cfg;
  for (size_t t = 0; t < cfg.tasks.size(); ++t) {
    const TaskSpec& spec = cfg.tasks[t];
    const std::string where = "tasks[" + std::to_string(t) + "]";
    TaskEncoder enc(*c.tok, spec.template_text, spec.verbalizer, spec.truncate_field,
                    cfg.train.max_length, where);
    auto train = read_examples(spec.train, spec.format);
    std::vector<Example> validation;
    if (!spec.validation.empty()) {
      validation = read_examples(spec.validation, spec.format);
    } else if (cfg.train.val_fraction > 0 && train.size() > 1) {
      // Carve validation out of train, deterministically from the seed.
      auto order = epoch_order(std::int64_t(train.size()), cfg.seed, t, kSplitStream);
      size_t n_val = std::max<size_t>(1, size_t(cfg.train.val_fraction * train.size()));
      std::vector<bool> is_val(train.size(), false);
      for (size_t i = 0; i < n_val; ++i) is_val[order[i]] = true;
      std::vector<Example> kept;
      for (size_t i = 0; i < train.size(); ++i)
        (is_val[i] ? validation : kept).push_back(std::move(train[i]));
      train = std::move(kept);
    }
    if (cfg.train.max_train_examples > 0 && train.size() > size_t(cfg.train.max_train_examples))
      train.resize(cfg.train.max_train_examples);
    auto test = read_examples(spec.test, spec.format);
    if (cfg.eval.max_examples > 0 && test.size() > size_t(cfg.eval.max_examples))
      test.resize(cfg.eval.max_examples);
    TaskData d;
    d.name = spec.name;
    d.train = encode_all(enc, train);
    d.validation = encode_all(enc, validation);
    d.test = encode_all(enc, test);
    d.label_tokens = enc.label_token_ids();
    std::vector<std::int32_t> pool;
    for (const auto& e : d.train) pool.insert(pool.end(), e.input_ids.begin(), e.input_ids.end());
    if (pool.empty()) throw InputError(spec.train, "no input tokens in the training split");
    c.token_pools.push_back(std::move(pool));
    spdlog::info("task {} '{}': {} train, {} validation, {} test examples, {} classes", t,
                 d.name, d.train.size(), d.validation.size(), d.test.size(),
                 d.label_tokens.size());
    c.data.push_back(std::move(d));
  }
}

}  // namespace

RunContext::RunContext() = default;
RunContext::~RunContext() = default;

std::int64_t RunContext::most_passes(std::int64_t passes) {
  if (!model->sharded()) return passes;
  auto t = torch::tensor({passes}, torch::kInt64);
  ranks.max(t, CommTag::kControl);
  return t.item<std::int64_t>();
}

void RunContext::idle_passes(std::int64_t done, std::int64_t most, std::int64_t layers,
                             Transformer::OutputUse output, bool backward) {
  for (std::int64_t k = done; k < most; ++k) model->idle_pass(layers, backward, output);
}

torch::Tensor RunContext::sampled_token_embeddings(std::size_t task) {
  return sampled_rows.at(task);
}

namespace {

// Every task's sampled prompt rows in one lookup, made by every rank.
void sample_prompt_rows(RunContext& c) {
  std::vector<std::int64_t> ids;
  for (std::size_t task = 0; task < c.token_pools.size(); ++task) {
    const auto& pool = c.token_pools[task];
    for (int p = 0; p < c.cfg.prompt.length; ++p) {
      double u = uniform01(random_key({c.cfg.seed, task, kInitStream, std::uint64_t(p)}));
      ids.push_back(pool[size_t(u * double(pool.size()))]);
    }
  }
  torch::NoGradGuard no_grad;
  auto rows = c.model->embed(torch::tensor(ids, torch::kLong).unsqueeze(0))
                  .squeeze(0)
                  .to(torch::kCPU, torch::kFloat64);
  c.sampled_rows.clear();
  for (std::size_t task = 0; task < c.token_pools.size(); ++task)
    c.sampled_rows.push_back(rows.narrow(0, std::int64_t(task) * c.cfg.prompt.length, c.cfg.prompt.length));
}

}  // namespace

MethodContext RunContext::method_context() {
  return MethodContext{cfg, *model, library,
                       [this](std::size_t task) { return sampled_token_embeddings(task); }};
}

void restore_weights(Transformer& model, const std::map<std::string, torch::Tensor>& saved,
                     const std::function<InputError(const std::string& name)>& missing) {
  torch::NoGradGuard no_grad;
  for (auto& [name, w] : model.named_weights()) {
    auto it = saved.find(name);
    if (it == saved.end()) throw missing(name);
    auto target = w;
    target.copy_(it->second);
  }
}

void load_inputs(RunContext& c) {
  std::string error;
  try {
    load_tokenizer_only(c);
    load_data(c);
    load_model(c);
  } catch (const InputError& e) {
    error = e.what();
  }
  if (c.ranks.comm) {
    agree_on_errors(c.ranks.control_plane(), error);
    agree_on_value(c.ranks.control_plane(), "base model (" + c.cfg.model.path + ")",
                   model_fingerprint(c.cfg.model.path));
  } else if (!error.empty()) {
    throw InputError("", error);
  }
  sample_prompt_rows(c);
}

}  // namespace sparc
