// sparc bench <what>: performance measurements. Each kind is a
// sub-subcommand registered by its own add_*_bench function below.
//
// sparc bench allreduce: times all_reduce (sum, f32) per message size on the
// chosen backend, like nccl-tests: every iteration starts after a barrier,
// an iteration's time is the slowest rank's, and the median over iterations
// is reported. algbw = bytes / time; busbw = algbw * 2(n-1)/n, the traffic
// of a ring all-reduce per link, comparable across world sizes. Then it
// measures how much of an async all_reduce overlaps with compute.
//
// sparc bench step: optimizer steps of a run config's first task (PCA and
// initialisation first, untimed), with the bytes the gradient all-reduce
// moved per step from the communicator's counters.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "comm/agreement.h"
#include "comm/communicator.h"
#include "train/trainer.h"
#include "core/error.h"
#include "core/log.h"

namespace sparc::cli {
namespace {

using clock_type = std::chrono::steady_clock;

double seconds_since(clock_type::time_point start) {
  return std::chrono::duration<double>(clock_type::now() - start).count();
}

std::unique_ptr<Communicator> make_communicator(const std::string& backend) {
  if (backend == "mpi") return make_mpi_communicator();
  if (backend == "nccl") {
#ifdef SPARC_WITH_NCCL
    if (!torch::cuda::is_available())
      throw InputError("--backend", "nccl needs a CUDA build of LibTorch and a GPU");
    return make_nccl_communicator();
#else
    throw InputError("--backend", "this sparc was built without NCCL");
#endif
  }
  throw InputError("--backend", "'" + backend + "': expected mpi or nccl");
}

torch::Device backend_device(const Communicator& comm) {
  if (comm.backend() != "nccl") return torch::kCPU;
  // The NCCL backend's rule: the local rank, or 0 when one GPU is visible.
  return torch::Device(torch::kCUDA, torch::cuda::device_count() == 1 ? 0 : comm.local_rank());
}

// Times `iters` runs of fn, each after a barrier; returns the median over
// iterations of the slowest rank's time, in seconds.
template <class Fn>
double median_time(Communicator& comm, int iters, Fn fn) {
  std::vector<double> times(iters);
  for (int i = 0; i < iters; ++i) {
    comm.barrier(CommTag::kControl);
    const auto start = clock_type::now();
    fn();
    times[i] = seconds_since(start);
  }
  torch::Tensor t = torch::tensor(times, torch::kDouble).to(backend_device(comm));
  comm.all_reduce(t, ReduceOp::kMax, CommTag::kControl);
  t = t.cpu();
  std::vector<double> slowest(t.data_ptr<double>(), t.data_ptr<double>() + iters);
  std::nth_element(slowest.begin(), slowest.begin() + iters / 2, slowest.end());
  return slowest[iters / 2];
}

struct AllreduceArgs {
  std::vector<std::int64_t> bytes;
  int iters = 20;
  int warmup = 3;
  std::int64_t overlap_bytes = 16 << 20;
  bool json = false;
  std::string backend = "mpi";
};

int run_allreduce_bench(const AllreduceArgs& a) {
  if (a.iters < 1) throw InputError("--iters", "must be at least 1");
  if (a.warmup < 0) throw InputError("--warmup", "must be 0 or more");
  std::vector<std::int64_t> sizes = a.bytes;
  if (sizes.empty())
    for (std::int64_t b = 1 << 10; b <= (std::int64_t(64) << 20); b *= 4) sizes.push_back(b);
  for (auto b : sizes)
    if (b < 4 || b % 4 != 0)
      throw InputError("--bytes", std::to_string(b) + ": must be a positive multiple of 4 (f32)");
  if (a.overlap_bytes != 0 && (a.overlap_bytes < 4 || a.overlap_bytes % 4 != 0))
    throw InputError("--overlap-bytes", "must be 0 (off) or a positive multiple of 4");

  auto comm = make_communicator(a.backend);
  const torch::Device device = backend_device(*comm);
  const int n = comm->size();
  const bool out = comm->rank() == 0;
  const double bus_factor = n > 1 ? 2.0 * (n - 1) / n : 0.0;
  auto result_json = [&](nlohmann::json j) {
    j["world_size"] = n;
    j["backend"] = comm->backend();
    return j.dump();
  };

  if (out && !a.json)
    std::printf("all_reduce sum f32, %s, %d rank(s), median of %d\n%12s %12s %10s %10s\n",
                comm->backend().c_str(), n, a.iters, "bytes", "us", "algbw_gbs", "busbw_gbs");
  for (auto bytes : sizes) {
    torch::Tensor t = torch::ones({bytes / 4}, torch::TensorOptions(torch::kFloat).device(device));
    auto reduce = [&] { comm->all_reduce(t, ReduceOp::kSum, CommTag::kGrad); };
    for (int i = 0; i < a.warmup; ++i) reduce();
    const double s = median_time(*comm, a.iters, reduce);
    const double algbw = double(bytes) / s / 1e9;
    if (!out) continue;
    if (a.json)
      std::cout << result_json({{"bytes", bytes},
                                {"us", s * 1e6},
                                {"algbw_gbs", algbw},
                                {"busbw_gbs", algbw * bus_factor}})
                << std::endl;
    else
      std::printf("%12lld %12.1f %10.3f %10.3f\n", static_cast<long long>(bytes), s * 1e6, algbw,
                  algbw * bus_factor);
  }

  if (a.overlap_bytes == 0) return kExitOk;
  if (n == 1) {
    spdlog::info("bench: overlap needs more than one rank (run under mpirun)");
    return kExitOk;
  }
  // Overlap: an async all_reduce, then compute, then wait(), against each
  // alone. The compute (256x256 matmuls) is sized to last about as long as
  // the all_reduce; every rank uses rank 0's repeat count.
  // overlap_fraction = (comm + compute - together) / min(comm, compute):
  // 1 when the shorter one is hidden entirely, 0 when they serialise.
  torch::Tensor t =
      torch::ones({a.overlap_bytes / 4}, torch::TensorOptions(torch::kFloat).device(device));
  torch::Tensor x = torch::randn({256, 256}).to(device) / 16;
  torch::Tensor y = torch::empty_like(x);
  int repeats = 1;
  auto compute = [&] {
    for (int i = 0; i < repeats; ++i) torch::mm_out(y, x, x);
    (void)y.sum().item<float>();  // waits for the device, if any
  };
  auto reduce = [&] { comm->all_reduce(t, ReduceOp::kSum, CommTag::kGrad); };
  for (int i = 0; i < a.warmup; ++i) {
    reduce();
    compute();
  }
  const double comm_s = median_time(*comm, a.iters, reduce);
  const auto start = clock_type::now();
  repeats = 20;
  compute();
  const double per_mm = seconds_since(start) / 20;
  torch::Tensor r = torch::tensor({std::int64_t(std::max(1.0, comm_s / per_mm))}).to(device);
  comm->broadcast(r, 0, CommTag::kControl);
  repeats = int(r.cpu().item<std::int64_t>());
  const double compute_s = median_time(*comm, a.iters, compute);
  const double both_s = median_time(*comm, a.iters, [&] {
    auto work = comm->all_reduce_async(t, ReduceOp::kSum, CommTag::kGrad);
    compute();
    work->wait();
  });
  const double fraction =
      std::clamp((comm_s + compute_s - both_s) / std::min(comm_s, compute_s), 0.0, 1.0);
  if (!out) return kExitOk;
  if (a.json)
    std::cout << result_json({{"overlap",
                               {{"bytes", a.overlap_bytes},
                                {"comm_us", comm_s * 1e6},
                                {"compute_us", compute_s * 1e6},
                                {"together_us", both_s * 1e6},
                                {"overlap_fraction", fraction}}}})
              << std::endl;
  else
    std::printf("overlap: %lld bytes: all_reduce %.1f us, compute %.1f us, async all_reduce + "
                "compute + wait %.1f us: overlap_fraction %.2f\n",
                static_cast<long long>(a.overlap_bytes), comm_s * 1e6, compute_s * 1e6,
                both_s * 1e6, fraction);
  return kExitOk;
}

void add_allreduce_bench(CLI::App& bench, std::vector<Command>& kinds) {
  auto a = std::make_shared<AllreduceArgs>();
  auto* sub = bench.add_subcommand(
      "allreduce", "Time all_reduce (sum, f32) per message size, and its overlap with compute; "
                   "run under mpirun for more than one rank");
  sub->add_option("--bytes", a->bytes,
                  "message size in bytes, repeatable (default: 1 KiB to 64 MiB in powers of 4)");
  sub->add_option("--iters", a->iters, "timed iterations per size")->capture_default_str();
  sub->add_option("--warmup", a->warmup, "untimed iterations first")->capture_default_str();
  sub->add_option("--overlap-bytes", a->overlap_bytes,
                  "message size of the overlap measurement (0: skip it)")
      ->capture_default_str();
  sub->add_option("--backend", a->backend, "mpi or nccl")->capture_default_str();
  sub->add_flag("--json", a->json, "one JSON line per size on stdout instead of a table");
  kinds.push_back({sub, [a]() { return run_allreduce_bench(*a); }});
}

// sparc bench step: optimizer steps of a real run config, timed.
struct StepArgs {
  std::string config;
  std::vector<std::string> sets;
  int steps = 20;
  bool json = false;
};

int run_step_bench(const StepArgs& a) {
  auto comm = make_mpi_communicator();
  RunConfig cfg;
  std::string error;
  try {
    cfg = load_run_config(a.config, a.sets);
  } catch (const InputError& e) {
    error = e.what();
  }
  agree_on_errors(*comm, error);
  comm->set_timeout(cfg.comm.timeout_s);
  if (comm->rank() != 0) spdlog::set_level(spdlog::level::warn);
  ContinualTrainer trainer(cfg, "", comm.get());
  auto b = trainer.bench_steps(a.steps);
  struct rusage ru {};
  ::getrusage(RUSAGE_SELF, &ru);
  const double peak_rss_mb = double(ru.ru_maxrss) / 1024.0;  // kilobytes on Linux
  // Every rank's peak growth over its resident memory before the model loaded.
  auto growth = comm->all_gather(
      torch::tensor({(double(ru.ru_maxrss) - double(b.rss_before_model_kb)) / 1024.0},
                    torch::kFloat64),
      CommTag::kControl);
  std::vector<double> growth_mb(growth.data_ptr<double>(),
                                growth.data_ptr<double>() + growth.numel());
  if (comm->rank() != 0) return kExitOk;
  const auto& m = trainer.model().config();
  nlohmann::json out = {
      {"tokens_per_s", b.tokens_per_s}, {"ms_per_step", b.ms_per_step},
      {"grad_allreduce_bytes_per_step", b.grad_bytes_per_step},
      {"gather_bytes_per_step", b.gather_bytes_per_step}, {"peak_rss_mb", peak_rss_mb},
      {"world_size", comm->size()}, {"dtype", cfg.model.dtype}, {"d_model", m.dim},
      {"n_layers", m.n_layers}, {"n_heads", m.n_heads}, {"n_kv_heads", m.n_kv_heads},
      {"ffn_dim", m.ffn_dim}, {"vocab", m.vocab_size}, {"seq_len", b.mean_example_tokens},
      {"batch", cfg.train.batch_size * cfg.train.grad_accum}, {"prompt_len", cfg.prompt.length},
      {"pca_k", cfg.pca.k}, {"method", cfg.method}, {"steps", b.steps},
      {"trainable_params", b.trainable_params}, {"sharding", cfg.model.sharding},
      {"model_rss_growth_mb", growth_mb}};
  if (a.json) {
    std::cout << out.dump() << std::endl;
  } else {
    for (const auto& [k, v] : out.items()) std::printf("%-30s %s\n", k.c_str(), v.dump().c_str());
  }
  return kExitOk;
}

void add_step_bench(CLI::App& bench, std::vector<Command>& kinds) {
  auto a = std::make_shared<StepArgs>();
  auto* sub = bench.add_subcommand(
      "step", "Time optimizer steps of a run config's first task (data parallel under mpirun)");
  sub->add_option("--config", a->config, "run configuration (YAML)")->required();
  sub->add_option("--set", a->sets, "override a config key: key.path=value (repeatable)");
  sub->add_option("--steps", a->steps, "timed steps (after one warm-up step)")
      ->check(CLI::Range(1, 1000000))
      ->capture_default_str();
  sub->add_flag("--json", a->json, "one JSON line on stdout");
  kinds.push_back({sub, [a]() { return run_step_bench(*a); }});
}

}  // namespace

void add_bench_command(CLI::App& app, std::vector<Command>& commands) {
  auto* bench = app.add_subcommand("bench", "Measure performance (see sparc bench --help)");
  bench->require_subcommand(1);
  auto kinds = std::make_shared<std::vector<Command>>();
  add_allreduce_bench(*bench, *kinds);
  add_step_bench(*bench, *kinds);
  // Further kinds: add_<what>_bench(*bench, *kinds).
  commands.push_back({bench, [kinds]() {
    for (const auto& k : *kinds)
      if (k.app->parsed()) return k.run();
    return kExitInputError;
  }});
}

}  // namespace sparc::cli
