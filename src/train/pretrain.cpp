#include "train/pretrain.h"

#include <ATen/autocast_mode.h>
#include <spdlog/spdlog.h>
#include <torch/version.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "comm/agreement.h"
#include "comm/communicator_factory.h"
#include "core/error.h"
#include "core/threads.h"
#include "core/file.h"
#include "core/hash.h"
#include "core/process.h"
#include "core/random.h"
#include "model/hf_model.h"
#include "model/model_loader.h"
#include "model/transformer.h"
#include "tokenizer/tokenizer.h"
#include "train/gradient_reducer.h"
#include "train/ranks.h"
#include "train/schedule.h"

namespace sparc {
namespace {

using Clock = std::chrono::steady_clock;
constexpr std::uint64_t kValStream = 0x76616c;      // "val"
constexpr std::uint64_t kOrderStream = 0x6f72646572;  // "order"

// The token streams: every line is BOS + tokens + EOS; a line goes to
// validation by a draw keyed by (seed, line number), so the split never
// depends on the number of ranks.
struct Corpus {
  std::vector<std::int32_t> train, val;
  std::int64_t lines = 0;
};

bool is_val_line(const PretrainConfig& cfg, std::uint64_t line_no) {
  return uniform01(random_key({cfg.seed, kValStream, line_no})) < cfg.val_fraction;
}

// Calls `fn(line, is_validation)` for every non-empty line of the text files.
template <typename Fn>
void for_each_line(const PretrainConfig& cfg, Fn&& fn) {
  std::uint64_t line_no = 0;
  for (const auto& path : cfg.text) {
    const std::string all = read_text_file(path);
    std::size_t start = 0;
    while (start < all.size()) {
      std::size_t end = all.find('\n', start);
      if (end == std::string::npos) end = all.size();
      std::string_view line(all.data() + start, end - start);
      start = end + 1;
      if (line.empty()) continue;
      fn(line, is_val_line(cfg, line_no++));
    }
  }
}

// Of the files' bytes, in order: the cache key's data half.
std::uint64_t data_fingerprint(const PretrainConfig& cfg) {
  std::uint64_t f = 0;
  for (const auto& path : cfg.text) {
    const std::string all = read_text_file(path);
    f = fnv1a(all, fnv1a(std::to_string(all.size()), f));
  }
  return f;
}

Corpus read_corpus(const PretrainConfig& cfg, const Tokenizer& tok) {
  Corpus c;
  for_each_line(cfg, [&](std::string_view line, bool val) {
    auto ids = tok.encode_with_bos(line);
    if (auto eos = tok.eos_id()) ids.push_back(*eos);
    auto& dst = val ? c.val : c.train;
    dst.insert(dst.end(), ids.begin(), ids.end());
    c.lines += 1;
  });
  return c;
}

// Where rank 0 trains the SentencePiece tokenizer before the model (beside
// the output, so every rank of a node, or of a shared file system, reads it).
std::string tokenizer_work_dir(const PretrainConfig& cfg) { return cfg.out + ".tokenizer"; }

// Trains a BPE SentencePiece model on the training lines (validation lines
// left out) with Debian's spm_train; returns the tokenizer.model path.
// Flags as Llama 2's tokenizer: BPE, byte fallback, identity normalization,
// digits split, <unk>=0 <s>=1 </s>=2; one thread, so the pieces and the
// file do not depend on the machine.
std::string train_sentencepiece(const PretrainConfig& cfg) {
  const std::string dir = tokenizer_work_dir(cfg);
  std::filesystem::remove_all(dir);
  make_directories(dir);
  const std::string lines = dir + "/train.txt";
  {
    std::ofstream out(lines, std::ios::binary);
    for_each_line(cfg, [&](std::string_view line, bool val) {
      if (!val) out << line << '\n';
    });
    if (!out) throw InputError(lines, "cannot write the tokenizer's training text");
  }
  spdlog::info("pretrain: training a {}-piece SentencePiece BPE tokenizer (spm_train)",
               cfg.tokenizer_vocab);
  const std::vector<std::string> argv = {
      "spm_train", "--input=" + lines, "--model_prefix=" + dir + "/tokenizer",
      "--vocab_size=" + std::to_string(cfg.tokenizer_vocab), "--model_type=bpe",
      "--character_coverage=1.0", "--byte_fallback=true", "--normalization_rule_name=identity",
      "--split_digits=true", "--num_threads=1", "--minloglevel=1"};
  int rc = 0;
  try {
    rc = run_process(argv, dir + "/spm_train.log");
  } catch (const InputError&) {
    throw InputError(cfg.source_path,
                     "tokenizer: sentencepiece needs spm_train (Debian package sentencepiece; "
                     "scripts/setup.sh installs it), which could not be started");
  }
  if (rc != 0) {
    std::string last;  // spm_train's last complaint
    std::ifstream log(dir + "/spm_train.log");
    for (std::string l; std::getline(log, l);)
      if (!l.empty() && l.rfind("Program terminated", 0) != 0) last = l;
    throw InputError(cfg.source_path, "tokenizer: spm_train failed (exit " + std::to_string(rc) +
                                          "): " + last + " (all of its output: " + dir +
                                          "/spm_train.log)");
  }
  std::filesystem::remove(lines);
  return dir + "/tokenizer.model";
}

// Windows of seq_len + 1 tokens, `stride` seq_len apart.
std::int64_t window_count(const std::vector<std::int32_t>& s, int seq_len) {
  return s.size() > 1 ? std::int64_t(s.size() - 1) / seq_len : 0;
}

torch::Tensor windows(const std::vector<std::int32_t>& s, int seq_len,
                      const std::vector<std::int64_t>& which) {
  auto out = torch::empty({std::int64_t(which.size()), seq_len + 1}, torch::kLong);
  auto a = out.accessor<std::int64_t, 2>();
  for (size_t b = 0; b < which.size(); ++b)
    for (int t = 0; t <= seq_len; ++t) a[b][t] = s[size_t(which[b] * seq_len + t)];
  return out;
}

// bf16 matrix products (oneDNN on the CPU, cuBLAS on a GPU) with f32
// weights, gradients and optimizer state. LibTorch 2.4 replaced the
// per-device setters by ones taking the device type; the GPU machine's is 2.x.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
#define SPARC_AUTOCAST_BY_DEVICE_TYPE 1
#endif
struct Autocast {
  bool on;
  c10::DeviceType type;
  Autocast(bool enable, c10::DeviceType device_type) : on(enable), type(device_type) {
    if (!on) return;
#ifdef SPARC_AUTOCAST_BY_DEVICE_TYPE
    at::autocast::set_autocast_dtype(type, at::kBFloat16);
    at::autocast::set_autocast_enabled(type, true);
#else
    if (type == c10::DeviceType::CUDA) {
      at::autocast::set_autocast_gpu_dtype(at::kBFloat16);
      at::autocast::set_enabled(true);
    } else {
      at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
      at::autocast::set_cpu_enabled(true);
    }
#endif
  }
  ~Autocast() {
    if (!on) return;
#ifdef SPARC_AUTOCAST_BY_DEVICE_TYPE
    at::autocast::set_autocast_enabled(type, false);
#else
    if (type == c10::DeviceType::CUDA)
      at::autocast::set_enabled(false);
    else
      at::autocast::set_cpu_enabled(false);
#endif
    at::autocast::clear_cache();
  }
};

// Summed next-token loss (nats) of a batch of windows [b, T + 1] (host
// tensors: the windows and their targets move to the model's device here).
torch::Tensor batch_loss(const Transformer& model, const torch::Tensor& host_windows, bool bf16) {
  const torch::Tensor w = host_windows.to(model.device());
  const auto T = w.size(1) - 1;
  torch::Tensor logits;
  {
    Autocast autocast(bf16, model.device().type());
    logits = model.forward(w.slice(1, 0, T));
  }
  return torch::nn::functional::cross_entropy(
      logits.reshape({-1, logits.size(-1)}).to(torch::kFloat32), w.slice(1, 1).reshape(-1),
      torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum));
}

ModelConfig model_config(const PretrainConfig& cfg, const Tokenizer& tok) {
  ModelConfig c;
  c.arch = Arch::kLlama;
  c.vocab_size = tok.vocab_size();
  c.dim = cfg.dim;
  c.n_layers = cfg.layers;
  c.n_heads = cfg.heads;
  c.n_kv_heads = cfg.kv_heads > 0 ? cfg.kv_heads : cfg.heads;
  c.head_dim = cfg.dim / cfg.heads;
  c.ffn_dim = cfg.ffn;
  c.max_seq_len = cfg.max_seq_len;
  c.tie_embeddings = true;
  c.validate(cfg.source_path);
  return c;
}

// Mean loss per token over the validation windows, data parallel.
double validation_loss(const Transformer& model, const Corpus& c, const PretrainConfig& cfg,
                       const Ranks& ranks, std::int64_t* tokens = nullptr) {
  torch::NoGradGuard no_grad;
  const std::int64_t n = window_count(c.val, cfg.seq_len);
  // Summed in f64 on the model's device (one host copy at the end, not one
  // per batch), which is also where the data plane (NCCL) needs it.
  auto t = torch::zeros({1}, torch::TensorOptions(torch::kFloat64).device(model.device()));
  std::vector<std::int64_t> mine;
  for (std::int64_t i = ranks.rank(); i < n; i += ranks.world()) mine.push_back(i);
  for (size_t i = 0; i < mine.size(); i += size_t(cfg.batch_size)) {
    std::vector<std::int64_t> part(mine.begin() + i,
                                   mine.begin() + std::min(mine.size(), i + cfg.batch_size));
    t += batch_loss(model, windows(c.val, cfg.seq_len, part), cfg.dtype == "bf16")
             .to(torch::kFloat64);
  }
  ranks.sum(t, CommTag::kEval);
  if (tokens) *tokens = n * cfg.seq_len;
  return n > 0 ? t.item<double>() / double(n * cfg.seq_len) : 0.0;
}

// Beside the weights: the SentencePiece model as Llama's tokenizer.model,
// tokenizer_config.json naming the Hugging Face class, and the special token
// ids in config.json.
void write_tokenizer_files(const std::string& model_file, const Tokenizer& tok,
                           const std::string& dir) {
  std::filesystem::copy_file(model_file, dir + "/tokenizer.model",
                             std::filesystem::copy_options::overwrite_existing);
  nlohmann::json tc = {{"tokenizer_class", "LlamaTokenizer"},
                       {"add_bos_token", true},
                       {"add_eos_token", false},
                       {"bos_token", "<s>"},
                       {"eos_token", "</s>"},
                       {"unk_token", "<unk>"},
                       {"legacy", true},
                       {"model_max_length", 1000000}};
  std::ofstream(dir + "/tokenizer_config.json") << tc.dump(2) << "\n";
  auto cfg = nlohmann::json::parse(read_text_file(dir + "/config.json"));
  if (auto b = tok.bos_id()) cfg["bos_token_id"] = *b;
  if (auto e = tok.eos_id()) cfg["eos_token_id"] = *e;
  std::ofstream out(dir + "/config.json");
  out << cfg.dump(2) << "\n";
  if (!out) throw InputError(dir + "/config.json", "write failed");
}

std::string stamp_path(const std::string& dir) { return dir + "/pretrain.json"; }

}  // namespace

double pretrain_validation_loss(const PretrainConfig& cfg, const std::string& dir) {
  auto tok = load_tokenizer(cfg.tokenizer == "bytes" ? cfg.tokenizer : dir);
  Corpus c = read_corpus(cfg, *tok);
  auto source = open_model(dir);
  Transformer model(*source, {});
  return validation_loss(model, c, cfg, Ranks{nullptr});
}

PretrainResult pretrain(const PretrainConfig& cfg, Communicator* comm, Communicator* control) {
  const Ranks ranks{comm, control};
  const bool root = ranks.rank() == 0;
  const std::uint64_t fingerprint = data_fingerprint(cfg);
  const std::string key = to_yaml(cfg);
  PretrainResult r;
  r.out = cfg.out;

  // The cache: rank 0 looks, every rank follows its verdict.
  auto cached = torch::zeros({1}, torch::kInt32);
  nlohmann::json stamp;
  if (root && file_exists(stamp_path(cfg.out))) {
    try {
      stamp = nlohmann::json::parse(read_text_file(stamp_path(cfg.out)));
      if (stamp.value("config", "") == key &&
          stamp.value("data_fingerprint", "") == std::to_string(fingerprint))
        cached[0] = 1;
    } catch (const nlohmann::json::exception&) {
      spdlog::warn("{}: unreadable, retraining", stamp_path(cfg.out));
    }
  }
  ranks.from_root(cached, CommTag::kControl);
  if (cached.item<int>() == 1) {
    r.cached = true;
    if (root) {
      r.steps = stamp.value("steps", std::int64_t{0});
      r.parameters = stamp.value("parameters", std::int64_t{0});
      r.initial_val_loss = stamp.value("initial_val_loss", 0.0);
      r.final_val_loss = stamp.value("final_val_loss", 0.0);
      spdlog::info("pretrain: {} is up to date (same config and data): reused", cfg.out);
    }
    return r;
  }

  std::string tokenizer_file;  // sentencepiece: trained by rank 0, read by all
  if (cfg.tokenizer == "sentencepiece") {
    auto failed = torch::zeros({1}, torch::kInt32);
    std::string error;
    if (root) {
      try {
        tokenizer_file = train_sentencepiece(cfg);
      } catch (const InputError& e) {
        failed[0] = 1;
        error = e.what();
        if (error.rfind(cfg.source_path + ": ", 0) == 0) error.erase(0, cfg.source_path.size() + 2);
      }
    }
    ranks.from_root(failed, CommTag::kControl);
    if (failed.item<int>() != 0) {
      if (root) throw AgreedError(cfg.source_path, error);
      throw AgreedError("rank 0", "could not train the tokenizer (see its log)");
    }
    tokenizer_file = tokenizer_work_dir(cfg) + "/tokenizer.model";
  }
  auto tok = load_tokenizer(tokenizer_file.empty() ? cfg.tokenizer : tokenizer_file);
  Corpus corpus = read_corpus(cfg, *tok);

  const std::int64_t n = window_count(corpus.train, cfg.seq_len);
  if (n == 0)
    throw InputError(cfg.source_path, "data.text: no training text (" +
                                          std::to_string(corpus.lines) + " lines, " +
                                          std::to_string(corpus.train.size()) + " tokens)");
  const ModelConfig mc = model_config(cfg, *tok);
  // The weights are drawn on the host and then moved, so a GPU run starts
  // from the same model as a CPU run of the same seed.
  ModelOptions options;
  options.device = parse_model_device(resolve_device(cfg.device), "model.device");
  Transformer model(*random_weights(mc, cfg.seed), options);
  if (auto line = settle_threads_for_model(model.config().dim); !line.empty()) spdlog::info(line);
  spdlog::info("pretrain: {}", thread_choice_text());
  model.set_weights_trainable(true);
  std::vector<torch::Tensor> decay, no_decay, params;
  for (auto& [name, w] : model.named_weights()) {
    (w.dim() >= 2 ? decay : no_decay).push_back(w);
    params.push_back(w);
  }
  r.parameters = model.parameter_count();
  r.train_tokens = n * cfg.seq_len;
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(decay, std::make_unique<torch::optim::AdamWOptions>(
                                 torch::optim::AdamWOptions(cfg.lr).weight_decay(cfg.weight_decay)));
  groups.emplace_back(no_decay, std::make_unique<torch::optim::AdamWOptions>(
                                    torch::optim::AdamWOptions(cfg.lr).weight_decay(0)));
  torch::optim::AdamW optimizer(groups, torch::optim::AdamWOptions(cfg.lr));
  spdlog::info("pretrain: {} ({} parameters, {}, {}) on {} training windows of {} tokens ({} "
               "lines), {} steps of {} sequences",
               mc.summary(), r.parameters, cfg.dtype, options.device.str(), n, cfg.seq_len,
               corpus.lines, cfg.steps, cfg.batch_size);

  r.initial_val_loss = validation_loss(model, corpus, cfg, ranks, &r.val_tokens);
  spdlog::info("pretrain: validation loss {:.4f} at the start ({} tokens)", r.initial_val_loss,
               r.val_tokens);
  const bool progress = root && ::isatty(STDERR_FILENO);
  const auto start = Clock::now();
  std::int64_t order_epoch = -1;
  std::vector<std::int64_t> order;
  const bool bf16 = cfg.dtype == "bf16";
  for (std::int64_t step = 0; step < cfg.steps; ++step) {
    for (auto& g : optimizer.param_groups())
      g.options().set_lr(scheduled_lr(cfg.schedule, cfg.lr, step, cfg.steps, cfg.warmup_steps));
    optimizer.zero_grad();
    std::vector<std::int64_t> mine;
    for (std::int64_t j = ranks.rank(); j < cfg.batch_size; j += ranks.world()) {
      const std::int64_t g = step * cfg.batch_size + j;  // global sample index
      if (g / n != order_epoch) {
        order_epoch = g / n;
        order = epoch_order(n, cfg.seed, kOrderStream, std::uint64_t(order_epoch));
      }
      mine.push_back(order[size_t(g % n)]);
    }
    torch::Tensor step_loss;  // read on the host only when logged: a GPU need not wait each step
    if (!mine.empty()) {
      auto loss = batch_loss(model, windows(corpus.train, cfg.seq_len, mine), bf16) /
                  double(cfg.batch_size * cfg.seq_len);
      loss.backward();
      step_loss = loss.detach();
    }
    all_reduce_gradients(ranks, params);  // every weight gradient in one buffer
    if (cfg.max_grad_norm > 0) torch::nn::utils::clip_grad_norm_(params, cfg.max_grad_norm);
    optimizer.step();
    const bool logged = (step + 1) % cfg.log_every == 0 || step + 1 == cfg.steps;
    if (logged || progress) {
      const double loss_value = step_loss.defined() ? step_loss.item<double>() : 0.0;
      auto l = torch::tensor({loss_value}, torch::kFloat64);
      if (logged) ranks.sum(l, CommTag::kControl);
      const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
      const double tps = double((step + 1) * cfg.batch_size * cfg.seq_len) / elapsed;
      const double eta = elapsed / double(step + 1) * double(cfg.steps - step - 1);
      if (progress)
        std::fprintf(stderr, "\r[pretrain] step %lld/%lld loss %.4f %.0f tok/s ETA %s   ",
                     (long long)(step + 1), (long long)cfg.steps, l.item<double>(), tps,
                     format_eta(eta).c_str());
      else if (logged && root)
        spdlog::info("pretrain: step {}/{} loss {:.4f} lr {:.3g} {:.0f} tok/s ETA {}", step + 1,
                     cfg.steps, l.item<double>(), optimizer.param_groups()[0].options().get_lr(),
                     tps, format_eta(eta));
    }
    if (cfg.eval_every > 0 && (step + 1) % cfg.eval_every == 0 && step + 1 < cfg.steps) {
      double v = validation_loss(model, corpus, cfg, ranks);
      if (root) spdlog::info("pretrain: step {}: validation loss {:.4f}", step + 1, v);
    }
  }
  if (progress) std::fprintf(stderr, "\n");
  r.steps = cfg.steps;
  r.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  r.tokens_per_s = double(cfg.steps * cfg.batch_size * cfg.seq_len) / r.seconds;
  model.set_weights_trainable(false);
  r.final_val_loss = validation_loss(model, corpus, cfg, ranks);
  spdlog::info("pretrain: validation loss {:.4f} after {} steps ({:.0f} s, {:.0f} tok/s)",
               r.final_val_loss, r.steps, r.seconds, r.tokens_per_s);

  if (root) {  // written aside, then moved into place: a stopped run leaves no half model
    std::map<std::string, torch::Tensor> tensors;
    for (const auto& [name, w] : model.named_weights()) tensors[name] = w.detach().cpu();
    TensorMapSource source(mc, std::move(tensors), "pretrained model");
    const std::string tmp = cfg.out + ".tmp-" + std::to_string(::getpid());
    const auto parent = std::filesystem::path(cfg.out).parent_path();
    if (!parent.empty()) std::filesystem::create_directories(parent);
    std::filesystem::remove_all(tmp);
    write_hf_llama_directory(source, tmp, "f32");
    if (!tokenizer_file.empty()) write_tokenizer_files(tokenizer_file, *tok, tmp);
    nlohmann::json j = {{"config", key},
                        {"data_fingerprint", std::to_string(fingerprint)},
                        {"tokenizer", cfg.tokenizer},
                        {"steps", r.steps},
                        {"parameters", r.parameters},
                        {"train_tokens", r.train_tokens},
                        {"val_tokens", r.val_tokens},
                        {"initial_val_loss", r.initial_val_loss},
                        {"final_val_loss", r.final_val_loss},
                        {"seconds", r.seconds},
                        {"tokens_per_s", r.tokens_per_s},
                        {"world_size", ranks.world()}};
    std::ofstream(stamp_path(tmp)) << j.dump(2) << "\n";
    std::filesystem::remove_all(cfg.out);
    std::filesystem::rename(tmp, cfg.out);
    if (!tokenizer_file.empty()) std::filesystem::remove_all(tokenizer_work_dir(cfg));
    spdlog::info("pretrain: wrote {}", cfg.out);
  }
  if (ranks.world() > 1) ranks.control_plane().barrier(CommTag::kControl);
  return r;
}

}  // namespace sparc
