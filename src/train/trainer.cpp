#include "train/trainer.h"

#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "ckpt/checkpoint.h"
#include "comm/agreement.h"
#include "core/error.h"
#include "core/fault.h"
#include "core/file.h"
#include "core/log.h"
#include "core/random.h"
#include "core/storage.h"
#include "data/jsonl_reader.h"
#include "formats/safetensors.h"
#include "model/fingerprint.h"
#include "model/model_loader.h"
#include "tokenizer/tokenizer.h"

namespace sparc {
namespace {

using Clock = std::chrono::steady_clock;

// This process's resident memory now (VmRSS), in kilobytes; 0 if unknown.
std::int64_t resident_kb() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::atoll(line.c_str() + 6);
  return 0;
}

// Streams of counter-based draws (SPEC 3): one constant per purpose.
constexpr std::uint64_t kSplitStream = 0x73706c6974;   // "split"
constexpr std::uint64_t kInitStream = 0x696e6974;      // "init"
constexpr std::uint64_t kLoraStream = 0x6c6f7261;      // "lora"
constexpr std::uint64_t kDropoutStream = 0x64726f70;   // "drop"

bool is_sparc(const std::string& m) { return m == "sparc" || m == "sparc+lora"; }
bool has_lora(const std::string& m) { return m == "lora" || m == "sparc+lora"; }
bool per_task_prompt(const std::string& m) { return is_sparc(m) || m == "prompt"; }

Linear& module_of(Block& b, const std::string& target) {
  if (target == "q") return b.q;
  if (target == "k") return b.k;
  if (target == "v") return b.v;
  if (target == "o") return b.o;
  if (target == "gate") return b.gate;
  if (target == "up") return b.up;
  return b.down;
}

}  // namespace

std::string format_eta(double seconds) {
  int s = int(std::max(0.0, seconds));
  char buf[32];
  std::snprintf(buf, sizeof buf, "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60);
  return buf;
}

double scheduled_lr(const std::string& schedule, double base, std::int64_t step,
                    std::int64_t total, std::int64_t warmup) {
  if (warmup > 0 && step < warmup) return base * double(step + 1) / double(warmup);
  if (schedule == "constant") return base;
  const double span = double(std::max<std::int64_t>(1, total - warmup));
  const double progress = std::min(1.0, double(step - warmup) / span);
  if (schedule == "linear") return base * (1.0 - progress);
  return base * 0.5 * (1.0 + std::cos(M_PI * progress));
}

std::vector<std::int64_t> epoch_order(std::int64_t n, std::uint64_t seed, std::uint64_t task,
                                      std::uint64_t epoch) {
  std::vector<std::int64_t> order(n);
  for (std::int64_t i = 0; i < n; ++i) order[i] = i;
  for (std::int64_t i = n - 1; i > 0; --i) {
    double u = uniform01(random_key({seed, task, epoch, std::uint64_t(i)}));
    std::swap(order[i], order[std::int64_t(u * double(i + 1))]);
  }
  return order;
}

struct ContinualTrainer::Impl {
  RunConfig cfg;
  std::string run_dir;
  std::unique_ptr<Tokenizer> tok;
  std::string tok_path;
  std::unique_ptr<Transformer> model;
  std::vector<TaskData> data;
  std::vector<Subspace> subspaces;  // every task's, computed up front (routing needs them too)
  std::vector<std::vector<std::int32_t>> token_pools;  // train input tokens per task (init sampling)
  std::vector<TaskEntry> library;
  std::map<std::string, std::shared_ptr<LoraAdapter>> shared_lora;  // the `lora` baseline
  std::ofstream metrics_out;
  bool progress_line = ::isatty(STDERR_FILENO) != 0;
  Communicator* comm = nullptr;  // null: a single process
  // Benchmarks: stop a task after this many optimizer steps (-1: never) and
  // time every step after the first.
  std::int64_t step_limit = -1;
  std::int64_t steps_run = 0;
  std::int64_t bad_steps_in_a_row = 0, skipped_steps = 0;  // non-finite gradients  // optimizer steps over the whole run (fault injection)
  double timed_seconds = 0;
  std::int64_t rss_before_model_kb = 0;
  std::int64_t timed_steps = 0, timed_tokens = 0, timed_examples = 0;
  // Checkpoints (SPEC 4): set by run(); null for benchmarks and evaluation.
  std::unique_ptr<CheckpointDir> ckpt_dir;
  std::unique_ptr<TrainingState> resumed;  // the state to continue from, until consumed
  std::vector<std::string> metric_history;  // metrics.jsonl lines so far
  std::int64_t failed_checkpoints = 0;      // writes that failed (checkpoint.on_write_error: continue)
  std::uint64_t fingerprint = 0;
  const RunResults* results_so_far = nullptr;
  const std::int64_t* routed_right_so_far = nullptr;

  int rank() const { return comm ? comm->rank() : 0; }
  int world() const { return comm ? comm->size() : 1; }
  bool is_root() const { return rank() == 0; }
  // Data parallel by global position: this rank's share of [begin, end).
  bool mine(std::int64_t position, std::int64_t begin = 0) const {
    return (position - begin) % world() == rank();
  }
  void sum_over_ranks(torch::Tensor& t, CommTag tag) {
    if (world() > 1) comm->all_reduce(t, ReduceOp::kSum, tag);
  }
  void from_root(torch::Tensor& t, CommTag tag) {
    if (world() > 1) comm->broadcast(t, 0, tag);
  }

  // Layer sharding makes every pass over the blocks a sequence of
  // collectives, so every rank must run the same number of passes. Before a
  // loop that runs `passes` passes here: the most any rank will run (one
  // small all-reduce; no collective at all when the model is not sharded).
  std::int64_t most_passes(std::int64_t passes) {
    if (!model->sharded()) return passes;
    auto t = torch::tensor({passes}, torch::kInt64);
    comm->all_reduce(t, ReduceOp::kMax, CommTag::kControl);
    return t.item<std::int64_t>();
  }
  // After the loop: idle passes up to `most`.
  void idle_passes(std::int64_t done, std::int64_t most, std::int64_t layers,
                   bool backward = false) {
    for (std::int64_t k = done; k < most; ++k) model->idle_pass(layers, backward);
  }
  // Whether features(e) runs the blocks.
  bool features_run_blocks(const EncodedExample& e) const {
    return cfg.pca.source == "hidden" && cfg.pca.hidden_layer > 0 && !e.input_ids.empty();
  }

  // ---- set-up -----------------------------------------------------------------

  // The tokenizer comes first: the data is read and checked with it before
  // the (possibly large) model is loaded, so input errors surface at once.
  void load_tokenizer_only() {
    const auto& m = cfg.model;
    if (m.tokenizer.empty() && !file_exists(m.path))  // the tokenizer would come from the model
      throw InputError(m.path, "model not found (model.path)");
    tok_path = m.tokenizer.empty() ? default_tokenizer_path(m.path) : m.tokenizer;
    if (tok_path.empty())
      throw InputError(cfg.source_path, "model.tokenizer: none given and none beside the model");
    tok = load_tokenizer(tok_path);
  }

  void load_model() {
    const auto& m = cfg.model;
    auto source = open_model(m.path);
    ModelOptions opt;
    opt.dtype = parse_model_dtype(m.dtype, "model.dtype");
    opt.device = parse_model_device(m.device, "model.device");
    if (cfg.method == "full" && opt.dtype != torch::kFloat32)
      throw InputError(cfg.source_path, "method full trains the weights themselves and needs "
                                        "model.dtype f32 (trainable state stays f32)");
    if (tok->vocab_size() > source->config().vocab_size)
      throw InputError(tok_path, "tokenizer has " + std::to_string(tok->vocab_size()) +
                                     " tokens but the model's vocabulary has " +
                                     std::to_string(source->config().vocab_size));
    if (m.sharding == "layer" && world() > 1) opt.shard_comm = comm;
    rss_before_model_kb = resident_kb();
    model = std::make_unique<Transformer>(*source, opt);
    for (const auto& t : cfg.lora.targets)
      if (t == "gate" && model->config().arch == Arch::kGpt2)
        throw InputError(cfg.source_path, "lora.targets: gpt2 has no 'gate' projection");
    spdlog::info("model {}: {} ({} parameters, {}{})", m.path, model->config().summary(),
                 model->parameter_count(), m.dtype,
                 model->sharded() ? fmt::format("; layer-sharded: {:.1f} MB of blocks on this rank",
                                                double(model->resident_block_bytes()) / 1e6)
                                  : "");
  }

  // Every rank reads and checks its inputs (tokenizer, data, model); one
  // agreement before any other collective, so an input error on one host
  // stops every rank with it; then the ranks compare base-model fingerprints.
  void load_inputs() {
    std::string error;
    try {
      load_tokenizer_only();
      load_data();
      load_model();
    } catch (const InputError& e) {
      error = e.what();
    }
    if (comm) {
      agree_on_errors(*comm, error);
      agree_on_value(*comm, "base model (" + cfg.model.path + ")", model_fingerprint(cfg.model.path));
    } else if (!error.empty()) {
      throw InputError("", error);
    }
  }

  std::vector<EncodedExample> encode_all(const TaskEncoder& enc, const std::vector<Example>& xs) {
    std::vector<EncodedExample> out;
    out.reserve(xs.size());
    for (const auto& x : xs) out.push_back(enc.encode(x));
    return out;
  }

  void load_data() {
    for (size_t t = 0; t < cfg.tasks.size(); ++t) {
      const TaskSpec& spec = cfg.tasks[t];
      const std::string where = "tasks[" + std::to_string(t) + "]";
      TaskEncoder enc(*tok, spec.template_text, spec.verbalizer, spec.truncate_field,
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
      token_pools.push_back(std::move(pool));
      spdlog::info("task {} '{}': {} train, {} validation, {} test examples, {} classes", t,
                   d.name, d.train.size(), d.validation.size(), d.test.size(),
                   d.label_tokens.size());
      data.push_back(std::move(d));
    }
  }

  // ---- features, PCA and routing ------------------------------------------------

  // The vectors an example contributes to its task's PCA (and routing): its
  // input tokens' embeddings, their hidden states after a layer, or their mean.
  torch::Tensor features(const EncodedExample& e) {
    torch::NoGradGuard no_grad;
    auto ids = torch::tensor(std::vector<std::int64_t>(e.input_ids.begin(), e.input_ids.end()),
                             torch::kLong);
    if (ids.numel() == 0) return torch::zeros({0, model->config().dim}, torch::kFloat64);
    auto emb = model->embed(ids.unsqueeze(0));
    torch::Tensor x;
    if (cfg.pca.source == "hidden")
      x = model->hidden_after(emb, {}, cfg.pca.hidden_layer).squeeze(0);
    else
      x = emb.squeeze(0);
    x = x.to(torch::kCPU, torch::kFloat64);
    if (cfg.pca.source == "mean") x = x.mean(0, true);
    return x;
  }

  void compute_subspaces() {
    const auto D = model->config().dim;
    for (size_t t = 0; t < data.size(); ++t) {
      // pca.max_tokens cuts the training set in its global order, so the
      // vectors used do not depend on how many ranks share the work.
      const auto& train = data[t].train;
      std::vector<std::int64_t> take(train.size(), -1);  // vectors of each example (-1: all)
      if (cfg.pca.max_tokens > 0) {
        std::int64_t left = cfg.pca.max_tokens;
        for (size_t i = 0; i < train.size(); ++i) {
          std::int64_t n = cfg.pca.source == "mean" ? 1 : std::int64_t(train[i].input_ids.size());
          take[i] = std::min(n, left);
          left -= take[i];
        }
      }
      CovarianceAccumulator acc(D);
      std::int64_t passes = 0;
      for (size_t i = 0; i < train.size(); ++i)
        passes += mine(std::int64_t(i)) && take[i] != 0 && features_run_blocks(train[i]);
      const std::int64_t most = most_passes(passes);
      for (size_t i = 0; i < train.size(); ++i) {
        if (!mine(std::int64_t(i)) || take[i] == 0) continue;
        auto x = features(train[i]);
        if (take[i] > 0) x = x.slice(0, 0, take[i]);
        if (x.size(0) > 0) acc.add(x);
      }
      idle_passes(passes, most, cfg.pca.hidden_layer);
      auto packed = acc.pack();
      sum_over_ranks(packed, CommTag::kPca);
      acc.unpack(packed);
      if (acc.count() <= cfg.pca.k)
        throw InputError(cfg.tasks[t].train, "only " + std::to_string(acc.count()) +
                                                 " PCA vectors for pca.k = " +
                                                 std::to_string(cfg.pca.k));
      Subspace sub = compute_subspace(acc, cfg.pca.k);
      // One solver result for every rank: rank 0's.
      auto ratio = torch::tensor({sub.explained_variance_ratio}, torch::kFloat64);
      from_root(sub.mu, CommTag::kPca);
      from_root(sub.basis, CommTag::kPca);
      from_root(sub.eigenvalues, CommTag::kPca);
      from_root(ratio, CommTag::kPca);
      sub.explained_variance_ratio = ratio.item<double>();
      subspaces.push_back(std::move(sub));
      spdlog::info("task '{}': PCA over {} vectors, k={} explains {:.1f}% of the variance",
                   data[t].name, acc.count(), cfg.pca.k,
                   100 * subspaces.back().explained_variance_ratio);
    }
    // The full similarity table, so users can set reuse_threshold from data.
    std::string header = "subspace similarity (reuse_threshold " +
                         std::to_string(cfg.reuse_threshold).substr(0, 4) + "):";
    spdlog::info("{}", header);
    for (size_t a = 0; a < data.size(); ++a) {
      std::string row;
      for (size_t b = 0; b < data.size(); ++b)
        row += fmt::format(" {:6.3f}", subspace_similarity(subspaces[a].basis, subspaces[b].basis));
      spdlog::info("  {:>16}{}", data[a].name, row);
    }
  }

  int route_example(const EncodedExample& e, size_t stored) {
    std::vector<const Subspace*> candidates;
    for (size_t j = 0; j < stored; ++j) candidates.push_back(&library[j].subspace);
    return route(features(e), candidates);
  }

  // ---- parameters ---------------------------------------------------------------

  torch::Tensor sampled_token_embeddings(size_t task) {
    const auto& pool = token_pools[task];
    std::vector<std::int64_t> ids;
    for (int p = 0; p < cfg.prompt.length; ++p) {
      double u = uniform01(random_key({cfg.seed, task, kInitStream, std::uint64_t(p)}));
      ids.push_back(pool[size_t(u * double(pool.size()))]);
    }
    torch::NoGradGuard no_grad;
    return model->token_embedding().index({torch::tensor(ids, torch::kLong)})
        .to(torch::kCPU, torch::kFloat64);
  }

  std::map<std::string, std::shared_ptr<LoraAdapter>> fresh_lora(size_t task) {
    std::map<std::string, std::shared_ptr<LoraAdapter>> out;
    const int r = cfg.lora.rank;
    for (size_t l = 0; l < model->blocks().size(); ++l)
      for (const auto& t : cfg.lora.targets) {
        Linear& lin = module_of(model->blocks()[l], t);
        const auto out_dim = lin.out_features, in_dim = lin.in_features;
        auto gen = at::detail::createCPUGenerator(random_key({cfg.seed, task, kLoraStream, lin.module_id}));
        auto a = at::rand({r, in_dim}, gen).mul_(2).sub_(1).mul_(1.0 / std::sqrt(double(in_dim)));
        auto adapter = std::make_shared<LoraAdapter>();
        adapter->a = a.to(model->device()).requires_grad_(true);
        adapter->b = torch::zeros({out_dim, r}, torch::device(model->device())).requires_grad_(true);
        adapter->scale = cfg.lora.alpha / r;
        adapter->dropout = cfg.lora.dropout;
        out["layers." + std::to_string(l) + "." + t] = adapter;
      }
    return out;
  }

  void install_lora(const std::map<std::string, std::shared_ptr<LoraAdapter>>& adapters) {
    for (size_t l = 0; l < model->blocks().size(); ++l)
      for (const char* t : {"q", "k", "v", "o", "gate", "up", "down"}) {
        auto it = adapters.find("layers." + std::to_string(l) + "." + t);
        module_of(model->blocks()[l], t).lora = it == adapters.end() ? nullptr : it->second;
      }
  }

  // The parameters task `t` starts from given the current library (SPEC 1.3,
  // 1.4): reuse of the most similar stored prompt, or an orthogonal sampled
  // initialisation. Also what an untrained task is evaluated with (SPEC 2).
  TaskEntry initial_entry(size_t t, bool log_decision) {
    TaskEntry e;
    e.name = data[t].name;
    e.subspace = subspaces[t];
    const auto& m = cfg.method;
    if (is_sparc(m)) {
      const Subspace& s = subspaces[t];
      int best = -1;
      double best_score = -1;
      for (size_t j = 0; j < library.size(); ++j) {
        double score = subspace_similarity(s.basis, library[j].subspace.basis);
        e.similarities.push_back(score);
        if (score > best_score) best_score = score, best = int(j);
      }
      torch::Tensor z;
      if (best >= 0 && best_score >= cfg.reuse_threshold) {
        z = reuse_init(library[best].prompt.to(torch::kFloat64), s);
        e.reused_from = best;
        if (log_decision)
          spdlog::info("task '{}': reuse the prompt of '{}' (similarity {:.3f} >= {:.3f})", e.name,
                       library[best].name, best_score, cfg.reuse_threshold);
      } else {
        z = project(sampled_token_embeddings(t), s);
        std::vector<StoredPrompt> stored;
        for (const auto& j : library) stored.push_back({j.z.to(torch::kFloat64), &j.subspace});
        auto orth = orthogonal_init(z, s, stored);
        z = orth.z;
        e.orth_directions = orth.directions;
        e.orth_capped = orth.capped;
        e.orth_residual = orth.residual_overlap;
        if (log_decision) {
          spdlog::info("task '{}': orthogonal initialisation (best similarity {:.3f} < {:.3f}; "
                       "{} stored directions removed{})",
                       e.name, std::max(0.0, best_score), cfg.reuse_threshold, orth.directions,
                       orth.capped ? fmt::format(", capacity cap binds: residual overlap {:.3g}",
                                                 orth.residual_overlap)
                                   : "");
        }
      }
      e.z = z.to(torch::kFloat32);
      e.z_init = e.z.clone();
      e.prompt = prompt_embeddings(e.z, s).to(torch::kFloat32);
    } else if (m == "prompt") {
      e.prompt = sampled_token_embeddings(t).to(torch::kFloat32);
    }
    if (m == "sparc+lora") e.lora = fresh_lora(t);
    return e;
  }

  // ---- forward and evaluation ---------------------------------------------------

  // Class scores [B, C] (f32): the logits of each class's token at the answer
  // position, after `prefix` ([P, D], or undefined for none).
  torch::Tensor class_scores(const std::vector<const EncodedExample*>& batch,
                             const torch::Tensor& prefix, const std::vector<std::int32_t>& labels) {
    const std::int64_t B = std::int64_t(batch.size());
    std::int64_t T = 0;
    for (const auto* e : batch) T = std::max<std::int64_t>(T, std::int64_t(e->ids.size()));
    auto tokens = torch::zeros({B, T}, torch::kLong);
    auto valid = torch::zeros({B, T}, torch::kBool);
    std::vector<std::int64_t> last(B);
    auto tok_a = tokens.accessor<std::int64_t, 2>();
    auto val_a = valid.accessor<bool, 2>();
    for (std::int64_t b = 0; b < B; ++b) {
      const auto& ids = batch[b]->ids;
      for (size_t i = 0; i < ids.size(); ++i) tok_a[b][i] = ids[i], val_a[b][i] = true;
      last[b] = std::int64_t(ids.size()) - 1;
    }
    const std::int64_t P = prefix.defined() ? prefix.size(0) : 0;
    auto pos = torch::tensor(last, torch::kLong).add_(P).to(model->device());
    auto h_last = model->prefixed_hidden_at(tokens, prefix, valid, pos);  // [B, D]
    auto label_ids = torch::tensor(std::vector<std::int64_t>(labels.begin(), labels.end()),
                                   torch::kLong).to(model->device());
    auto w = model->output_embedding().index_select(0, label_ids);  // [C, D]
    return torch::matmul(h_last, w.t()).to(torch::kFloat32);
  }

  // Correct predictions among `examples` with one prefix/adapter set.
  // With `shard`, this rank scores its share of `examples` and the counts are
  // summed over ranks; without, it scores exactly `examples`.
  // `most` is the number of batches the rank with the most runs (layer
  // sharding keeps ranks in step); -1: agree on it here.
  std::int64_t count_correct(const std::vector<const EncodedExample*>& all,
                             const torch::Tensor& prefix, const std::vector<std::int32_t>& labels,
                             bool shard = true, std::int64_t most = -1) {
    torch::NoGradGuard no_grad;
    std::vector<const EncodedExample*> examples;
    for (size_t i = 0; i < all.size(); ++i)
      if (!shard || mine(std::int64_t(i))) examples.push_back(all[i]);
    std::int64_t correct = 0;
    const size_t bs = size_t(cfg.eval.batch_size);
    const std::int64_t batches = std::int64_t((examples.size() + bs - 1) / bs);
    if (most < 0) most = most_passes(batches);
    for (size_t i = 0; i < examples.size(); i += bs) {
      std::vector<const EncodedExample*> batch(examples.begin() + i,
                                               examples.begin() + std::min(examples.size(), i + bs));
      auto pred = class_scores(batch, prefix, labels).argmax(1).cpu();
      auto pa = pred.accessor<std::int64_t, 1>();
      for (size_t b = 0; b < batch.size(); ++b) correct += pa[b] == batch[b]->label;
    }
    idle_passes(batches, most, model->config().n_layers);
    if (shard) {
      auto c = torch::tensor({correct}, torch::kInt64);
      sum_over_ranks(c, CommTag::kEval);
      correct = c.item<std::int64_t>();
    }
    return correct;
  }

  std::vector<const EncodedExample*> pointers(const std::vector<EncodedExample>& xs) {
    std::vector<const EncodedExample*> out;
    for (const auto& x : xs) out.push_back(&x);
    return out;
  }

  // Accuracy on task j's test split with the parameters of `entry` (undefined
  // prompt: none) and the currently installed shared state.
  double accuracy_with(size_t j, const TaskEntry* entry) {
    if (entry) install_lora(entry->lora);
    auto c = count_correct(pointers(data[j].test), entry ? entry->prompt : torch::Tensor(),
                           data[j].label_tokens);
    if (entry) install_lora(shared_lora);
    return double(c) / double(data[j].test.size());
  }

  // Domain-incremental: each test example goes to the stored task whose
  // subspace reconstructs it best. Returns accuracy; counts routing hits.
  double routed_accuracy(size_t j, std::int64_t* routed_right) {
    std::map<int, std::vector<const EncodedExample*>> groups;
    std::int64_t right = 0, passes = 0;
    for (size_t i = 0; i < data[j].test.size(); ++i)
      passes += mine(std::int64_t(i)) && features_run_blocks(data[j].test[i]);
    const std::int64_t most = most_passes(passes);
    for (size_t i = 0; i < data[j].test.size(); ++i) {
      if (!mine(std::int64_t(i))) continue;
      int r = route_example(data[j].test[i], library.size());
      groups[r].push_back(&data[j].test[i]);
      right += r == int(j);
    }
    idle_passes(passes, most, cfg.pca.hidden_layer);
    // Sharded, every rank visits every stored task with the most batches any rank has for it.
    std::vector<std::int64_t> batches(library.size(), 0);
    const auto bs = std::int64_t(cfg.eval.batch_size);
    for (const auto& [r, xs] : groups) batches[r] = (std::int64_t(xs.size()) + bs - 1) / bs;
    if (model->sharded()) {
      auto t = torch::tensor(batches, torch::kInt64);
      comm->all_reduce(t, ReduceOp::kMax, CommTag::kControl);
      for (size_t r = 0; r < batches.size(); ++r) {
        batches[r] = t[std::int64_t(r)].item<std::int64_t>();
        if (batches[r] > 0) groups[int(r)];  // present, possibly empty here
      }
    }
    std::int64_t correct = 0;
    for (const auto& [r, xs] : groups) {
      install_lora(library[r].lora);
      correct += count_correct(xs, library[r].prompt, data[j].label_tokens, false, batches[r]);
    }
    install_lora(shared_lora);
    auto counts = torch::tensor({correct, right}, torch::kInt64);
    sum_over_ranks(counts, CommTag::kEval);
    if (routed_right) *routed_right += counts[1].item<std::int64_t>();
    return double(counts[0].item<std::int64_t>()) / double(data[j].test.size());
  }

  // Row i of the accuracy matrix (SPEC 2), after task i.
  std::vector<double> evaluate_row(size_t i, std::int64_t* routed_right) {
    std::vector<double> row;
    const bool domain = cfg.setting == "domain-incremental" && per_task_prompt(cfg.method);
    for (size_t j = 0; j < data.size(); ++j) {
      if (domain) {
        row.push_back(routed_accuracy(j, i + 1 == data.size() ? routed_right : nullptr));
      } else if (!per_task_prompt(cfg.method)) {
        row.push_back(accuracy_with(j, nullptr));  // lora / full: the current shared state
      } else if (j <= i) {
        row.push_back(accuracy_with(j, &library[j]));
      } else {
        TaskEntry start = initial_entry(j, false);  // what task j would start from now
        row.push_back(accuracy_with(j, &start));
      }
    }
    return row;
  }

  // Perplexity of the model as used for inference, on plain text: the
  // eval.ppl_text file (one text per line), else every task's test inputs.
  double perplexity() {
    std::vector<std::vector<std::int32_t>> texts;
    if (!cfg.eval.ppl_text.empty()) {
      std::string all = read_text_file(cfg.eval.ppl_text);
      size_t start = 0;
      while (start < all.size()) {
        size_t end = all.find('\n', start);
        if (end == std::string::npos) end = all.size();
        if (end > start) {
          auto ids = tok->encode_with_bos(all.substr(start, end - start));
          if (ids.size() > size_t(cfg.train.max_length)) ids.resize(cfg.train.max_length);
          texts.push_back(ids);
        }
        start = end + 1;
      }
    } else {
      for (const auto& d : data)
        for (const auto& e : d.test) texts.push_back(e.ids);
    }
    torch::NoGradGuard no_grad;
    double nll = 0;
    std::int64_t count = 0, passes = 0;
    for (size_t i = 0; i < texts.size(); ++i) passes += texts[i].size() >= 2 && mine(std::int64_t(i));
    const std::int64_t most = most_passes(passes);
    for (size_t i = 0; i < texts.size(); ++i) {
      const auto& ids = texts[i];
      if (ids.size() < 2 || !mine(std::int64_t(i))) continue;
      auto t = torch::tensor(std::vector<std::int64_t>(ids.begin(), ids.end()), torch::kLong).unsqueeze(0);
      auto logits = model->forward(t).squeeze(0).to(torch::kFloat64).cpu();
      auto logp = torch::log_softmax(logits.slice(0, 0, -1), -1);
      auto target = t.squeeze(0).slice(0, 1).unsqueeze(1);
      nll -= logp.gather(1, target).sum().item<double>();
      count += target.size(0);
    }
    idle_passes(passes, most, model->config().n_layers);
    auto totals = torch::tensor({nll, double(count)}, torch::kFloat64);
    sum_over_ranks(totals, CommTag::kEval);
    nll = totals[0].item<double>();
    count = std::int64_t(totals[1].item<double>());
    return count ? std::exp(nll / double(count)) : -1;
  }

  // ---- training -----------------------------------------------------------------

  // Only trainable gradients cross the network (SPEC 3): all of them travel
  // in one contiguous float32 buffer, one `grad` all-reduce per optimizer
  // step (a NaN or Inf on any rank shows in the sum on every rank).
  void reduce_gradients(std::vector<torch::Tensor>& params) {
    if (world() == 1) return;
    std::vector<torch::Tensor> parts;
    for (auto& p : params)
      parts.push_back(p.grad().defined() ? p.grad().reshape(-1).to(torch::kFloat32)
                                         : torch::zeros({p.numel()}, torch::kFloat32));
    auto flat = torch::cat(parts);
    comm->all_reduce(flat, ReduceOp::kSum, CommTag::kGrad);
    std::int64_t offset = 0;
    torch::NoGradGuard no_grad;
    for (auto& p : params) {
      auto g = flat.slice(0, offset, offset + p.numel()).view_as(p).to(p.scalar_type());
      if (p.grad().defined()) p.mutable_grad().copy_(g);
      else p.mutable_grad() = g.clone();
      offset += p.numel();
    }
  }

  static bool gradients_finite(const std::vector<torch::Tensor>& params) {
    for (const auto& p : params)
      if (p.grad().defined() && !torch::isfinite(p.grad()).all().item<bool>()) return false;
    return true;
  }

  struct Trainables {
    std::vector<torch::Tensor> prompt_group, lora_group;  // leaves
  };

  void train_task(size_t t, TaskEntry& entry) {
    const auto& tc = cfg.train;
    Trainables tr;
    if (is_sparc(cfg.method)) {
      entry.z = entry.z.detach().clone().requires_grad_(true);
      tr.prompt_group.push_back(entry.z);
    } else if (cfg.method == "prompt") {
      entry.prompt = entry.prompt.detach().clone().requires_grad_(true);
      tr.prompt_group.push_back(entry.prompt);
    }
    auto& adapters = cfg.method == "lora" ? shared_lora : entry.lora;
    for (auto& [name, a] : adapters) tr.lora_group.insert(tr.lora_group.end(), {a->a, a->b});
    if (cfg.method == "full") {
      model->set_weights_trainable(true);
      for (auto& [name, w] : model->named_weights()) tr.prompt_group.push_back(w);
    }
    install_lora(adapters);

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
    const std::vector<std::string> param_names = trainable_names(adapters);

    std::vector<StoredPrompt> stored;
    if (is_sparc(cfg.method) && tc.lambda_orth > 0)
      for (const auto& j : library) stored.push_back({j.z.to(torch::kFloat64), &j.subspace});

    const auto& train = data[t].train;
    const std::int64_t n = std::int64_t(train.size());
    const std::int64_t per_step = std::int64_t(tc.batch_size) * tc.grad_accum;
    const std::int64_t steps_per_epoch = (n + per_step - 1) / per_step;
    const std::int64_t total = steps_per_epoch * tc.epochs;
    const auto& labels = data[t].label_tokens;
    std::int64_t step = 0;
    double best_val = -1;
    int bad_epochs = 0;
    std::vector<torch::Tensor> best_params;
    const auto start = Clock::now();
    std::int64_t tokens_seen = 0;
    // ---- resume hook: the optimizer state and data cursor of an interrupted task ----
    std::int64_t first_epoch = 0, first_s = 0;
    if (resumed && resumed->in_task && resumed->task == std::int64_t(t)) {
      restore_optimizer(optimizer, all_params, param_names, *resumed);
      first_epoch = resumed->epoch;
      first_s = resumed->step_in_epoch;
      step = resumed->task_step;
      best_val = resumed->best_val;
      bad_epochs = int(resumed->bad_epochs);
      for (const auto& b : resumed->best_params) best_params.push_back(b.to(model->device()));
      resumed.reset();
    }

    for (int epoch = int(first_epoch); epoch < tc.epochs && step != step_limit; ++epoch) {
      auto order = epoch_order(n, cfg.seed, t, std::uint64_t(epoch));
      for (std::int64_t s = epoch == first_epoch ? first_s : 0; s < steps_per_epoch && step != step_limit;
           ++s, ++step) {
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
            if (!mine(i, first)) continue;  // data parallel: this rank's share
            batch.push_back(&train[order[i]]);
            keys.sample_ids.push_back(order[i]);
          }
          const bool penalty = !stored.empty() && m == first && is_root();
          // Layer sharding: a rank without examples in this micro-batch still
          // joins the gathers of its peers' forward and backward.
          if (batch.empty()) model->idle_pass(model->config().n_layers, true);
          if (batch.empty() && !penalty) continue;
          torch::Tensor prefix;
          if (is_sparc(cfg.method)) prefix = prompt_embeddings(entry.z, entry.subspace);
          else if (cfg.method == "prompt") prefix = entry.prompt;
          if (batch.empty()) {  // rank 0 still adds the penalty (once over all ranks)
            auto loss = tc.lambda_orth * orthogonality_penalty(entry.z, entry.subspace, stored)
                                             .to(torch::kFloat32);
            loss.backward();
            loss_value += loss.item<double>();
            continue;
          }
          model->set_dropout(&keys);
          auto scores = class_scores(batch, prefix, labels);
          model->set_dropout(nullptr);
          std::vector<std::int64_t> y;
          for (const auto* e : batch) y.push_back(e->label);
          // Sum over the step's examples / their count: the same gradient
          // whatever the micro-batching (and, later, the world size).
          auto loss = torch::nn::functional::cross_entropy(
                          scores, torch::tensor(y, torch::kLong).to(scores.device()),
                          torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum)) /
                      double(stop - first);
          if (penalty)
            loss = loss + tc.lambda_orth * orthogonality_penalty(entry.z, entry.subspace, stored)
                                               .to(torch::kFloat32);
          loss.backward();
          loss_value += loss.item<double>();
        }
        if (fault_point("step", ++steps_run, rank()))  // SPARC_FAULT=nan@step:N
          for (auto& p : all_params)
            if (p.grad().defined()) p.mutable_grad().fill_(std::nan(""));
        reduce_gradients(all_params);
        // A NaN or Inf on any rank is in the summed gradient on every rank:
        // all skip the step together, and stop after max_bad_steps in a row.
        if (!gradients_finite(all_params)) {
          ++bad_steps_in_a_row;
          ++skipped_steps;
          spdlog::warn("task '{}' step {}: non-finite gradient, step skipped ({} in a row, {} "
                       "in this run)",
                       data[t].name, step + 1, bad_steps_in_a_row, skipped_steps);
          if (bad_steps_in_a_row >= tc.max_bad_steps)
            throw AgreedError(cfg.source_path, std::to_string(bad_steps_in_a_row) +
                              " optimizer steps in a row had non-finite gradients "
                              "(train.max_bad_steps); stopped without writing over the last "
                              "checkpoint (lower train.lr, or resume with --resume auto)");
          optimizer.zero_grad();
          continue;
        }
        bad_steps_in_a_row = 0;
        if (world() > 1 && is_logged(step, total)) {  // the global loss, for the log only
          auto l = torch::tensor({loss_value}, torch::kFloat64);
          sum_over_ranks(l, CommTag::kControl);
          loss_value = l.item<double>();
        }
        if (tc.max_grad_norm > 0) torch::nn::utils::clip_grad_norm_(all_params, tc.max_grad_norm);
        optimizer.step();
        tokens_seen += step_tokens;
        if (step_limit > 0 && step > 0) {
          timed_seconds += std::chrono::duration<double>(Clock::now() - step_start).count();
          timed_steps += 1;
          timed_tokens += step_tokens;
          timed_examples += stop - first;
        }
        log_step(t, step, total, loss_value, optimizer.param_groups()[0].options().get_lr(),
                 tokens_seen, start);
        // ---- checkpoint hook: cadence, and SIGTERM/SIGINT agreed by every rank ----
        if (ckpt_dir) {
          const bool stop = agree_on_stop();
          const auto every = cfg.checkpoint.every_steps;
          if (stop || (every > 0 && steps_run % every == 0)) {
            InTask it{t,         &entry, &optimizer, &all_params, &param_names, epoch, s + 1,
                      step + 1,  total,  std::min(n, (s + 1) * per_step), best_val, bad_epochs,
                      &best_params};
            // Every rank leaves only once rank 0's checkpoint is on disk (the
            // outcome's agreement waits for it): a launcher ends the job at
            // the first rank that exits.
            checkpoint_agreed([&] { return capture(&it); }, false, stop);
          }
          if (stop) throw StopRequested("stopped by a signal after step " + std::to_string(steps_run) +
                                        "; resume with --resume auto");
        }
      }
      if (tc.early_stop_patience > 0 && !data[t].validation.empty()) {
        torch::Tensor prefix;
        if (is_sparc(cfg.method)) prefix = prompt_embeddings(entry.z, entry.subspace).detach();
        else if (cfg.method == "prompt") prefix = entry.prompt.detach();
        double val = double(count_correct(pointers(data[t].validation), prefix, labels)) /
                     double(data[t].validation.size());
        spdlog::info("task '{}' epoch {}: validation accuracy {:.4f}", data[t].name, epoch + 1, val);
        if (val > best_val) {
          best_val = val;
          bad_epochs = 0;
          best_params.clear();
          for (auto& p : all_params) best_params.push_back(p.detach().clone());
        } else if (++bad_epochs >= tc.early_stop_patience) {
          spdlog::info("task '{}': early stop after epoch {}", data[t].name, epoch + 1);
          break;
        }
      }
    }
    if (!best_params.empty()) {
      torch::NoGradGuard no_grad;
      for (size_t i = 0; i < all_params.size(); ++i) all_params[i].copy_(best_params[i]);
    }
    if (progress_line && is_root()) std::fprintf(stderr, "\n");
    // Freeze what was trained.
    if (is_sparc(cfg.method)) {
      entry.z = entry.z.detach();
      entry.prompt = prompt_embeddings(entry.z, entry.subspace).detach().to(torch::kFloat32);
    } else if (cfg.method == "prompt") {
      entry.prompt = entry.prompt.detach();
    }
    if (cfg.method == "full") model->set_weights_trainable(false);
    for (auto& [name, a] : adapters) {
      if (cfg.method == "sparc+lora") {
        a->a = a->a.detach();
        a->b = a->b.detach();
      }
    }
    install_lora(shared_lora);
  }

  bool is_logged(std::int64_t step, std::int64_t total) const {
    return (step + 1) % cfg.train.log_every == 0 || step + 1 == total;
  }

  void log_step(size_t t, std::int64_t step, std::int64_t total, double loss, double lr,
                std::int64_t tokens, Clock::time_point start) {
    const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
    const double tps = elapsed > 0 ? double(tokens) / elapsed : 0;
    const bool logged = is_logged(step, total);
    if (!is_root()) return;
    if (logged) {
      nlohmann::json line = {{"task", data[t].name}, {"step", step + 1}, {"loss", loss},
                             {"lr", lr}, {"tokens_per_s", tps}};
      errno = 0;
      metrics_out << line.dump() << "\n" << std::flush;
      if (!metrics_out)  // rank 0 alone: the CLI aborts the other ranks
        throw StorageError(run_dir + "/metrics.jsonl: " +
                           (errno != 0 ? errno_text("write") : std::string("write failed")));
      metric_history.push_back(line.dump());
    }
    const double eta = step + 1 < total ? elapsed / double(step + 1) * double(total - step - 1) : 0;
    if (progress_line) {
      std::fprintf(stderr, "\r[task %zu/%zu %s] step %lld/%lld loss %.4f %.0f tok/s ETA %s   ",
                   t + 1, data.size(), data[t].name.c_str(), (long long)(step + 1),
                   (long long)total, loss, tps, format_eta(eta).c_str());
    } else if (logged) {
      spdlog::info("task {}/{} '{}' step {}/{} loss {:.4f} lr {:.3g} {:.0f} tok/s ETA {}", t + 1,
                   data.size(), data[t].name, step + 1, total, loss, lr, tps, format_eta(eta));
    }
  }

  // ---- the saved library ----------------------------------------------------------

  // library.safetensors: every task's subspace and trained tensors, the
  // shared adapters (lora) or trained weights (full), plus the decisions as
  // JSON metadata. `sparc eval` rebuilds the library from it.
  void save_library(const std::string& path) {
    SafetensorsWriter w;
    auto add = [&](const std::string& name, const torch::Tensor& t) {
      if (!t.defined()) return;
      auto c = t.detach().to(torch::kCPU).contiguous();
      DType d = c.scalar_type() == torch::kFloat64 ? DType::F64 : DType::F32;
      c = c.to(d == DType::F64 ? torch::kFloat64 : torch::kFloat32);
      w.add(name, d, c.sizes().vec(), c.data_ptr(), size_t(c.numel()) * c.element_size());
    };
    nlohmann::json meta = nlohmann::json::array();
    for (size_t i = 0; i < library.size(); ++i) {
      const auto& e = library[i];
      const std::string p = "tasks." + std::to_string(i) + ".";
      add(p + "mu", e.subspace.mu);
      add(p + "basis", e.subspace.basis);
      add(p + "eigenvalues", e.subspace.eigenvalues);
      add(p + "z", e.z);
      add(p + "prompt", e.prompt);
      for (const auto& [m, a] : e.lora) add(p + "lora." + m + ".a", a->a), add(p + "lora." + m + ".b", a->b);
      meta.push_back({{"name", e.name}, {"reused_from", e.reused_from},
                      {"explained_variance_ratio", e.subspace.explained_variance_ratio}});
    }
    for (const auto& [m, a] : shared_lora) add("shared.lora." + m + ".a", a->a), add("shared.lora." + m + ".b", a->b);
    if (cfg.method == "full")
      for (const auto& [name, t] : model->named_weights()) add("weights." + name, t);
    w.set_metadata("library", meta.dump());
    w.write(path);
  }

  void load_library(const std::string& path) {
    SafetensorsReader r(path);
    auto get = [&](const std::string& name) -> torch::Tensor {
      if (!r.contains(name)) return {};
      const auto& info = r.info(name);
      auto t = torch::empty(info.shape, info.dtype == DType::F64 ? torch::kFloat64 : torch::kFloat32);
      r.read(name, t.data_ptr());
      return t;
    };
    auto it = r.metadata().find("library");
    if (it == r.metadata().end()) throw InputError(path, "no 'library' metadata: not a sparc library");
    nlohmann::json meta;
    try {
      meta = nlohmann::json::parse(it->second);
      bool ok = meta.is_array();
      for (size_t i = 0; ok && i < meta.size(); ++i)
        ok = meta[i].is_object() && meta[i].value("name", nlohmann::json()).is_string() &&
             meta[i].value("reused_from", nlohmann::json()).is_number_integer() &&
             meta[i].value("explained_variance_ratio", nlohmann::json()).is_number();
      if (!ok)
        throw InputError(path, "'library' metadata is not an array of {name, reused_from, "
                               "explained_variance_ratio}: not a sparc library");
    } catch (const nlohmann::json::exception& e) {
      throw InputError(path, "'library' metadata: invalid JSON: " + json_error_text(e.what()));
    }
    if (meta.size() != data.size())
      throw InputError(path, "holds " + std::to_string(meta.size()) + " tasks, the config has " +
                                 std::to_string(data.size()));
    auto adapters = [&](const std::string& prefix) {
      std::map<std::string, std::shared_ptr<LoraAdapter>> out;
      for (const auto& t : r.tensors()) {
        if (t.name.rfind(prefix, 0) != 0 || t.name.size() < 2 || t.name.compare(t.name.size() - 2, 2, ".a") != 0)
          continue;
        std::string m = t.name.substr(prefix.size(), t.name.size() - prefix.size() - 2);
        auto a = std::make_shared<LoraAdapter>();
        a->a = get(t.name).to(model->device());
        a->b = get(prefix + m + ".b").to(model->device());
        a->scale = cfg.lora.alpha / cfg.lora.rank;
        out[m] = a;
      }
      return out;
    };
    for (size_t i = 0; i < meta.size(); ++i) {
      const std::string p = "tasks." + std::to_string(i) + ".";
      TaskEntry e;
      e.name = meta[i]["name"].get<std::string>();
      e.reused_from = meta[i]["reused_from"].get<int>();
      e.subspace.mu = get(p + "mu");
      e.subspace.basis = get(p + "basis");
      e.subspace.eigenvalues = get(p + "eigenvalues");
      e.subspace.explained_variance_ratio = meta[i]["explained_variance_ratio"].get<double>();
      e.z = get(p + "z");
      e.prompt = get(p + "prompt");
      e.lora = adapters(p + "lora.");
      library.push_back(std::move(e));
    }
    shared_lora = adapters("shared.lora.");
    if (cfg.method == "full") {
      torch::NoGradGuard no_grad;
      for (auto& [name, t] : model->named_weights()) {
        auto saved = get("weights." + name);
        if (!saved.defined()) throw InputError(path, "missing trained weight 'weights." + name + "'");
        auto target = t;
        target.copy_(saved);
      }
    }
  }

  // ---- checkpoints (SPEC 4): state capture and restore --------------------------------

  // Names of the optimizer's parameters, in its order (prompt group, then LoRA group).
  std::vector<std::string> trainable_names(
      const std::map<std::string, std::shared_ptr<LoraAdapter>>& adapters) {
    std::vector<std::string> names;
    if (is_sparc(cfg.method)) names.push_back("z");
    else if (cfg.method == "prompt") names.push_back("prompt");
    if (cfg.method == "full")
      for (auto& [name, w] : model->named_weights()) names.push_back("weights." + name);
    for (auto& [name, a] : adapters) names.push_back("lora." + name + ".a"), names.push_back("lora." + name + ".b");
    return names;
  }

  // The position of a task being trained, for capture().
  struct InTask {
    size_t task;
    const TaskEntry* entry;
    torch::optim::AdamW* optimizer;
    const std::vector<torch::Tensor>* params;
    const std::vector<std::string>* names;
    std::int64_t epoch, step_in_epoch, task_step, total, sample_offset;
    double best_val;
    int bad_epochs;
    const std::vector<torch::Tensor>* best_params;
  };

  // One MAX all-reduce of the local stop flag (tag control, never grad), so
  // every rank stops after the same step.
  bool agree_on_stop() {
    int local = stop_signal_received() ? 1 : 0;
    if (world() == 1) return local != 0;
    auto flag = torch::tensor({local}, torch::kInt32);
    comm->all_reduce(flag, ReduceOp::kMax, CommTag::kControl);
    return flag.item<int>() != 0;
  }

  static CkptTask to_ckpt(const TaskEntry& e) {
    CkptTask c;
    c.name = e.name;
    c.mu = e.subspace.mu;
    c.basis = e.subspace.basis;
    c.eigenvalues = e.subspace.eigenvalues;
    c.explained_variance_ratio = e.subspace.explained_variance_ratio;
    c.z = e.z.defined() ? e.z.detach() : e.z;
    c.z_init = e.z_init;
    c.prompt = e.prompt.defined() ? e.prompt.detach() : e.prompt;
    for (const auto& [m, a] : e.lora) c.lora[m] = {a->a.detach(), a->b.detach()};
    c.reused_from = e.reused_from;
    c.similarities = e.similarities;
    c.orth_directions = e.orth_directions;
    c.orth_capped = e.orth_capped;
    c.orth_residual = e.orth_residual;
    return c;
  }

  std::map<std::string, std::shared_ptr<LoraAdapter>> adapters_from(
      const std::map<std::string, CkptLora>& saved, bool trainable) {
    std::map<std::string, std::shared_ptr<LoraAdapter>> out;
    for (const auto& [m, l] : saved) {
      auto a = std::make_shared<LoraAdapter>();
      a->a = l.a.to(model->device()).clone();
      a->b = l.b.to(model->device()).clone();
      if (trainable) a->a.requires_grad_(true), a->b.requires_grad_(true);
      a->scale = cfg.lora.alpha / cfg.lora.rank;
      a->dropout = cfg.lora.dropout;
      out[m] = a;
    }
    return out;
  }

  TaskEntry from_ckpt(const CkptTask& c, bool trainable) {
    TaskEntry e;
    e.name = c.name;
    e.subspace.mu = c.mu;
    e.subspace.basis = c.basis;
    e.subspace.eigenvalues = c.eigenvalues;
    e.subspace.explained_variance_ratio = c.explained_variance_ratio;
    e.z = c.z;
    e.z_init = c.z_init;
    e.prompt = c.prompt;
    e.lora = adapters_from(c.lora, trainable);
    e.reused_from = c.reused_from;
    e.similarities = c.similarities;
    e.orth_directions = c.orth_directions;
    e.orth_capped = c.orth_capped;
    e.orth_residual = c.orth_residual;
    return e;
  }

  // Everything run() needs to continue: at a task boundary (`it` null: the
  // next task is library.size()) or within a task.
  TrainingState capture(const InTask* it) {
    TrainingState st;
    st.config_yaml = to_yaml(cfg);
    st.model_fingerprint = fingerprint;
    st.model_path = cfg.model.path;
    const auto& mc = model->config();
    st.arch = arch_name(mc.arch);
    st.dim = mc.dim, st.n_layers = mc.n_layers, st.n_heads = mc.n_heads;
    st.n_kv_heads = mc.n_kv_heads, st.vocab_size = mc.vocab_size;
    st.method = cfg.method;
    st.setting = cfg.setting;
    st.seed = cfg.seed;
    st.world_size = world();
    for (const auto& d : data) st.tasks.push_back(d.name);
    st.rng_streams = {{"split", kSplitStream}, {"init", kInitStream}, {"lora", kLoraStream},
                      {"dropout", kDropoutStream}};
    for (size_t i = 0; i < subspaces.size(); ++i) {
      CkptTask c;
      c.name = data[i].name;
      c.mu = subspaces[i].mu, c.basis = subspaces[i].basis, c.eigenvalues = subspaces[i].eigenvalues;
      c.explained_variance_ratio = subspaces[i].explained_variance_ratio;
      st.subspaces.push_back(c);
    }
    for (const auto& e : library) st.library.push_back(to_ckpt(e));
    for (const auto& [m, a] : shared_lora) st.shared_lora[m] = {a->a.detach(), a->b.detach()};
    if (cfg.method == "full")
      for (auto& [name, w] : model->named_weights()) st.weights.emplace_back(name, w.detach());
    st.global_step = steps_run;
    st.task = std::int64_t(library.size());
    if (it) {
      st.in_task = true;
      st.task = std::int64_t(it->task);
      st.epoch = it->epoch, st.step_in_epoch = it->step_in_epoch, st.task_step = it->task_step;
      st.task_total_steps = it->total, st.sample_offset = it->sample_offset;
      st.current = to_ckpt(*it->entry);
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
    if (results_so_far) {
      st.accuracy = results_so_far->accuracy;
      st.zero_shot = results_so_far->zero_shot;
      st.test_sizes = results_so_far->test_sizes;
      st.ppl_before = results_so_far->ppl_before;
      st.trainable_params = results_so_far->trainable_params;
      st.model_params = results_so_far->model_params;
    }
    if (routed_right_so_far) st.routed_right = *routed_right_so_far;
    st.metric_history = metric_history;
    return st;
  }

  void save_checkpoint(const TrainingState& st, bool task_end) {
    const std::string path = ckpt_dir->save(st, task_end, rank());
    spdlog::info("checkpoint {} (task {}, global step {})", path, st.task, st.global_step);
  }

  // Rank 0 runs `write` (a checkpoint, the run's result files); every rank
  // learns whether it failed through the start-up agreement's MAX all-reduce
  // of an error flag, so all stop together or all go on, none left waiting
  // in a collective. "" when it worked, else the error text.
  std::string root_writes_agreed(const std::function<void()>& write) {
    std::string error;
    if (is_root()) {
      try {
        write();
      } catch (const StorageError& e) {
        error = e.what();
      }
    }
    if (comm && world() > 1) {
      try {
        agree_on_errors(*comm, error);
      } catch (const AgreedError& e) {
        error = e.what();
      }
    }
    return error;
  }

  // A checkpoint written by rank 0, its outcome agreed by every rank. A
  // failure ends the run on every rank with StorageError (exit 74) under
  // checkpoint.on_write_error = stop, or when the checkpoint was asked for by
  // a stop signal; under `continue` it is a warning and training goes on.
  void checkpoint_agreed(const std::function<TrainingState()>& state, bool task_end, bool stopping) {
    const std::string error = root_writes_agreed([&] { save_checkpoint(state(), task_end); });
    if (error.empty()) return;
    ++failed_checkpoints;
    if (stopping)
      throw StorageError("a stop was requested (SIGTERM/SIGINT) but its checkpoint could not be "
                         "written: " + error + "; resume with --resume auto",
                         true);
    if (cfg.checkpoint.on_write_error == "continue") {
      if (is_root())
        spdlog::warn("checkpoint write failed ({} in this run so far), training continues "
                     "without it (checkpoint.on_write_error: continue): {}",
                     failed_checkpoints, error);
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

  // Restores everything before the task loop; returns the first task to run.
  size_t restore_run(RunResults& r, std::int64_t& routed_right) {
    const TrainingState& st = *resumed;
    subspaces.clear();
    for (const auto& c : st.subspaces) {
      Subspace sub;
      sub.mu = c.mu, sub.basis = c.basis, sub.eigenvalues = c.eigenvalues;
      sub.explained_variance_ratio = c.explained_variance_ratio;
      subspaces.push_back(sub);
    }
    library.clear();
    for (const auto& c : st.library) library.push_back(from_ckpt(c, false));
    shared_lora = adapters_from(st.shared_lora, true);
    if (cfg.method == "full") {
      torch::NoGradGuard no_grad;
      std::map<std::string, torch::Tensor> saved(st.weights.begin(), st.weights.end());
      for (auto& [name, w] : model->named_weights()) {
        auto it = saved.find(name);
        if (it == saved.end()) throw InputError("checkpoint", "no trained weight '" + name + "'");
        auto target = w;
        target.copy_(it->second);
      }
    }
    r.accuracy = st.accuracy;
    r.zero_shot = st.zero_shot;
    r.test_sizes = st.test_sizes;
    r.ppl_before = st.ppl_before;
    routed_right = st.routed_right;
    metric_history = st.metric_history;
    steps_run = st.global_step;
    if (is_root())
      for (const auto& line : metric_history) metrics_out << line << "\n";
    metrics_out << std::flush;
    spdlog::info("resumed: {} of {} tasks done{}, global step {}", st.library.size(), data.size(),
                 st.in_task ? fmt::format(", task '{}' at step {} of {}", data[st.task].name,
                                          st.task_step, st.task_total_steps)
                            : std::string(),
                 st.global_step);
    return size_t(st.task);
  }

  std::int64_t trainable_per_task() {
    std::int64_t n = 0;
    const std::int64_t P = cfg.prompt.length;
    if (is_sparc(cfg.method)) n += P * cfg.pca.k;
    if (cfg.method == "prompt") n += P * model->config().dim;
    if (has_lora(cfg.method))
      for (auto& b : model->blocks())
        for (const auto& t : cfg.lora.targets) {
          const auto& lin = module_of(b, t);
          n += cfg.lora.rank * (lin.out_features + lin.in_features);
        }
    if (cfg.method == "full") n = model->parameter_count();
    return n;
  }
};

ContinualTrainer::ContinualTrainer(RunConfig config, std::string run_dir, Communicator* comm)
    : impl_(std::make_unique<Impl>()) {
  impl_->cfg = std::move(config);
  impl_->run_dir = std::move(run_dir);
  impl_->comm = comm;
}

ContinualTrainer::~ContinualTrainer() = default;

const std::vector<TaskEntry>& ContinualTrainer::library() const { return impl_->library; }
const Transformer& ContinualTrainer::model() const { return *impl_->model; }

RunResults ContinualTrainer::run() {
  Impl& s = *impl_;
  if (s.is_root()) {
    make_directories(s.run_dir);
    write_file(s.run_dir + "/config.yaml", to_yaml(s.cfg));
    s.metrics_out.open(s.run_dir + "/metrics.jsonl");
    if (!s.metrics_out) throw StorageError(s.run_dir + "/metrics.jsonl: " + errno_text("cannot create"));
  }
  torch::manual_seed(s.cfg.seed);  // nothing should draw from it; set for safety

  s.load_inputs();
  // ---- checkpoint set-up and resume hook (SPEC 4) ----
  s.fingerprint = model_fingerprint(s.cfg.model.path);
  s.ckpt_dir = std::make_unique<CheckpointDir>(
      s.cfg.checkpoint.dir.empty() ? s.run_dir + "/checkpoints" : s.cfg.checkpoint.dir,
      s.cfg.checkpoint.keep);
  RunResults r;
  std::int64_t routed_right = 0;
  s.results_so_far = &r;
  s.routed_right_so_far = &routed_right;
  size_t first_task = 0;
  if (s.resumed) {
    first_task = s.restore_run(r, routed_right);
    if (!s.resumed->in_task) s.resumed.reset();
  } else {  // a fresh run: subspaces, zero-shot row, perplexity before
    s.compute_subspaces();

    for (size_t j = 0; j < s.data.size(); ++j) {
      r.test_sizes.push_back(std::int64_t(s.data[j].test.size()));
      r.zero_shot.push_back(s.accuracy_with(j, nullptr));
      spdlog::info("task '{}': zero-shot accuracy {:.4f} ({} test examples)", s.data[j].name,
                   r.zero_shot.back(), s.data[j].test.size());
    }
    r.ppl_before = s.perplexity();
    if (s.cfg.method == "lora") s.shared_lora = s.fresh_lora(0);
  }
  r.model_params = s.model->parameter_count();
  r.trainable_params = s.trainable_per_task();

  for (size_t t = first_task; t < s.data.size(); ++t) {
    TaskEntry entry;
    if (s.resumed) {  // resume hook: the interrupted task continues from its saved state
      entry = s.from_ckpt(s.resumed->current, true);
    } else {
      entry = s.initial_entry(t, s.is_root());
      // The coordinator's initialisation is the one every rank trains from.
      if (entry.z.defined()) {
        s.from_root(entry.z, CommTag::kControl);
        entry.z_init = entry.z.clone();
        entry.prompt = prompt_embeddings(entry.z, entry.subspace).to(torch::kFloat32);
      } else if (entry.prompt.defined()) {
        s.from_root(entry.prompt, CommTag::kControl);
      }
    }
    s.train_task(t, entry);
    s.library.push_back(std::move(entry));
    r.accuracy.push_back(s.evaluate_row(t, &routed_right));
    std::string row;
    for (double a : r.accuracy.back()) row += fmt::format(" {:.4f}", a);
    spdlog::info("after task '{}': accuracy{}", s.data[t].name, row);
    // ---- checkpoint hook: every task end; a stop request takes effect here too ----
    const bool stop = s.agree_on_stop();
    s.checkpoint_agreed([&] { return s.capture(nullptr); }, true, stop);
    if (stop) {
      throw StopRequested("stopped by a signal after task '" + s.data[t].name +
                          "'; resume with --resume auto");
    }
  }
  if (s.cfg.setting == "domain-incremental" && per_task_prompt(s.cfg.method)) {
    std::int64_t total = 0;
    for (auto n : r.test_sizes) total += n;
    r.routing_accuracy = double(routed_right) / double(total);
    spdlog::info("routing accuracy {:.4f}", r.routing_accuracy);
  }
  s.install_lora(s.shared_lora);
  r.ppl_after = s.perplexity();
  r.metrics = compute_metrics(r.accuracy, r.zero_shot);
  spdlog::info("ACC {:.4f} BWT {:+.4f} FWT {:+.4f} forgetting {:.4f} ppl {:.4f} -> {:.4f}",
               r.metrics.acc, r.metrics.bwt, r.metrics.fwt, r.metrics.forgetting, r.ppl_before,
               r.ppl_after);
  const std::string error = s.root_writes_agreed([&] {
    const std::string library = s.run_dir + "/library.safetensors";
    try {
      s.save_library(library);
    } catch (const InputError& e) {  // the writer's message names the file and errno
      std::remove(library.c_str());
      throw StorageError(e.what());
    }
    write_results_json(s.run_dir + "/results.json", s.cfg, r, s.library);
  });
  if (!error.empty())
    throw StorageError("the run finished but its results could not be written: " + error, true);
  return r;
}

void ContinualTrainer::resume(const std::string& spec) {
  Impl& s = *impl_;
  const std::string dir =
      s.cfg.checkpoint.dir.empty() ? s.run_dir + "/checkpoints" : s.cfg.checkpoint.dir;
  // Rank 0 picks the checkpoint (verifying checksums), every rank reads it.
  std::string error, chosen;
  if (s.is_root()) {
    try {
      if (spec == "auto" || is_directory(spec)) {
        CheckpointDir d(spec == "auto" ? dir : spec, s.cfg.checkpoint.keep);
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
  if (s.comm) {
    agree_on_errors(*s.comm, error);
    auto text = torch::zeros({4096}, torch::kUInt8);
    if (s.is_root()) std::memcpy(text.data_ptr(), chosen.data(), std::min<size_t>(chosen.size(), 4095));
    s.from_root(text, CommTag::kControl);
    chosen = reinterpret_cast<const char*>(text.data_ptr());
  } else if (!error.empty()) {
    throw InputError("", error);
  }
  if (chosen.empty()) return;
  try {
    auto st = std::make_unique<TrainingState>(read_checkpoint_file(chosen));
    auto problems = resume_conflicts(s.cfg, parse_run_config(st->config_yaml, chosen, ""),
                                     size_t(st->task) + (st->in_task ? 1 : 0));
    if (st->model_fingerprint != model_fingerprint(s.cfg.model.path))
      problems.insert(problems.begin(),
                      "the base model differs (fingerprint of " + s.cfg.model.path +
                          " does not match the checkpoint's " + st->model_path + ")");
    if (!problems.empty()) {
      std::string text;
      for (const auto& p : problems) text += "\n  " + p;
      throw InputError(chosen, "cannot resume this run from it:" + text);
    }
    s.resumed = std::move(st);
    spdlog::info("resuming from {}", chosen);
  } catch (const InputError& e) {
    error = e.what();
  }
  if (s.comm) agree_on_errors(*s.comm, error);
  else if (!error.empty()) throw InputError("", error);
}

ContinualTrainer::StepBench ContinualTrainer::bench_steps(int steps) {
  Impl& s = *impl_;
  s.load_inputs();
  s.compute_subspaces();
  if (s.cfg.method == "lora") s.shared_lora = s.fresh_lora(0);
  TaskEntry entry = s.initial_entry(0, false);
  if (s.comm) s.comm->reset_counters();
  s.step_limit = steps + 1;  // the first step warms up and is not timed
  s.progress_line = false;
  s.train_task(0, entry);
  StepBench b;
  b.rss_before_model_kb = s.rss_before_model_kb;
  b.steps = s.timed_steps;
  b.trainable_params = s.trainable_per_task();
  if (b.steps == 0) return b;
  b.ms_per_step = 1000 * s.timed_seconds / double(b.steps);
  b.tokens_per_s = double(s.timed_tokens) / s.timed_seconds;
  const double all_steps = double(b.steps + 1);
  if (s.comm) {
    b.grad_bytes_per_step = double(s.comm->counters(CommTag::kGrad).bytes) / all_steps;
    b.gather_bytes_per_step = double(s.comm->counters(CommTag::kGather).bytes) / all_steps;
  }
  b.mean_example_tokens =
      double(s.timed_tokens) / double(s.timed_examples) - double(s.cfg.prompt.length);
  b.rss_before_model_kb = s.rss_before_model_kb;
  return b;
}

RunResults ContinualTrainer::evaluate_saved() {
  Impl& s = *impl_;
  s.load_inputs();
  s.load_library(s.run_dir + "/library.safetensors");
  s.install_lora(s.shared_lora);
  RunResults r;
  std::int64_t routed_right = 0;
  for (const auto& d : s.data) r.test_sizes.push_back(std::int64_t(d.test.size()));
  r.accuracy.push_back(s.evaluate_row(s.data.size() - 1, &routed_right));
  if (s.cfg.setting == "domain-incremental" && per_task_prompt(s.cfg.method)) {
    std::int64_t total = 0;
    for (auto n : r.test_sizes) total += n;
    r.routing_accuracy = double(routed_right) / double(total);
  }
  return r;
}

void write_results_json(const std::string& path, const RunConfig& cfg, const RunResults& r,
                        const std::vector<TaskEntry>& library) {
  using nlohmann::json;
  json tasks = json::array(), reuse = json::array();
  for (const auto& t : cfg.tasks) tasks.push_back(t.name);
  for (const auto& e : library) {
    json sims = json::object();
    for (size_t j = 0; j < e.similarities.size(); ++j) sims[library[j].name] = e.similarities[j];
    reuse.push_back({{"task", e.name},
                     {"reused_from", e.reused_from >= 0 ? json(library[e.reused_from].name) : json()},
                     {"similarities", sims},
                     {"orthogonal_directions", e.orth_directions},
                     {"orthogonal_capped", e.orth_capped}});
  }
  const double T = double(cfg.tasks.size());
  json out = {
      {"method", cfg.method},
      {"setting", cfg.setting},
      {"tasks", tasks},
      {"accuracy_matrix", r.accuracy},
      {"test_sizes", r.test_sizes},
      {"zero_shot", r.zero_shot},
      {"acc", r.metrics.acc},
      {"bwt", r.metrics.bwt},
      {"fwt", r.metrics.fwt},
      {"forgetting", r.metrics.forgetting},
      {"forgetting_per_task", r.metrics.forgetting_per_task},
      {"retention", r.metrics.retention},
      {"trainable_params", r.trainable_params},
      {"trainable_params_total", cfg.method == "full" || cfg.method == "lora"
                                     ? r.trainable_params
                                     : std::int64_t(r.trainable_params * T)},
      {"model_params", r.model_params},
      {"trainable_fraction", double(r.trainable_params) / double(r.model_params)},
      {"reuse", reuse},
      {"routing_accuracy", r.routing_accuracy >= 0 ? json(r.routing_accuracy) : json()},
      {"ppl_before", r.ppl_before},
      {"ppl_after", r.ppl_after},
  };
  write_file(path, out.dump(2) + "\n");
}

}  // namespace sparc
