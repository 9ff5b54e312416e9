// sparc bench: the measurements behind each kind (bench.h).
#include <cstdlib>
#include <sys/resource.h>
#include <torch/csrc/autograd/profiler_legacy.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "bench/bench.h"
#include "comm/agreement.h"
#include "comm/communicator_factory.h"
#include "comm/device_placement.h"
#include "comm/communicator.h"
#include "model/flops.h"
#include "model/transformer.h"
#include "sparc/subspace.h"
#include "train/trainer.h"
#include "config/method.h"
#include "core/error.h"
#include "core/log.h"

namespace sparc::bench {
namespace {

using clock_type = std::chrono::steady_clock;

double seconds_since(clock_type::time_point start) {
  return std::chrono::duration<double>(clock_type::now() - start).count();
}

// --backend through the one factory (src/comm/communicator_factory.h); the
// device of the nccl backend is the GPU device placement chose.
std::unique_ptr<Communicator> make_communicator(const std::string& backend) {
  if (backend != "mpi" && backend != "nccl")
    throw InputError("--backend", "'" + backend + "': expected mpi or nccl");
  const std::string problem = check_device_and_backend(backend == "nccl" ? "cuda" : "cpu", backend);
  if (!problem.empty()) throw InputError("--backend", problem);
  if (backend == "nccl") place_rank_on_gpu(-1);
  return sparc::make_communicator(backend, backend == "nccl");
}

torch::Device backend_device(const Communicator& comm) {
  if (comm.backend() != "nccl") return torch::kCPU;
  // The GPU device placement chose for this rank (make_communicator placed it).
  return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(placed_gpu().value_or(
                                         torch::cuda::device_count() == 1 ? 0 : comm.local_rank())));
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

// The model dtypes and f64 by name: f32, bf16, f16, f64.
torch::Dtype bench_dtype(const std::string& name, const std::string& where) {
  if (name == "f64" || name == "float64") return torch::kFloat64;
  return parse_model_dtype(name, where);
}

std::string dtype_name(torch::Dtype t) {
  if (t == torch::kFloat64) return "f64";
  if (t == torch::kBFloat16) return "bf16";
  if (t == torch::kFloat16) return "f16";
  return "f32";
}

// GFLOP/s per rank of an n x n x n product in `dtype` on `device`, every
// rank at once: 2 n^3 over the median of the slowest rank's times. The
// device is explicit: bench step's MPI control communicator says CPU while
// its model may sit on a GPU, whose peak is the one MFU needs.
double gemm_gflops(Communicator& comm, torch::Device device, torch::Dtype dtype, std::int64_t n,
                   int iters, int warmup) {
  torch::NoGradGuard no_grad;
  auto opts = torch::TensorOptions(dtype).device(device);
  auto a = torch::randn({n, n}, torch::kFloat32).to(opts);
  auto b = torch::randn({n, n}, torch::kFloat32).to(opts);
  auto c = torch::empty({n, n}, opts);
  auto mm = [&] {
    torch::mm_out(c, a, b);
    if (device.is_cuda()) (void)c[0][0].item<double>();  // waits for the device
  };
  for (int i = 0; i < warmup; ++i) mm();
  const double s = median_time(comm, iters, mm);
  return 2.0 * double(n) * double(n) * double(n) / s / 1e9;
}

// The OpenMP wait policy this process runs with (sparc sets "passive" for
// itself when it runs more than one thread and none was chosen: core/threads.h).
std::string omp_wait_policy() {
  const char* p = std::getenv("OMP_WAIT_POLICY");
  return p != nullptr ? p : "default";
}

}  // namespace

int run_allreduce_bench(const AllreduceOptions& a) {
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

int run_gemm_bench(const GemmOptions& a) {
  if (a.iters < 1) throw InputError("--iters", "must be at least 1");
  if (a.size < 1) throw InputError("--size", "must be at least 1");
  const auto dtype = bench_dtype(a.dtype, "--dtype");
  auto comm = make_communicator(a.backend);
  const double gflops = gemm_gflops(*comm, backend_device(*comm), dtype, a.size, a.iters, a.warmup);
  if (comm->rank() != 0) return kExitOk;
  nlohmann::json out = {{"dtype", dtype_name(dtype)},      {"size", a.size},
                        {"gflops_per_rank", gflops},        {"world_size", comm->size()},
                        {"threads", torch::get_num_threads()}, {"backend", comm->backend()},
                        {"iters", a.iters}, {"omp_wait_policy", omp_wait_policy()}};
  if (a.json)
    std::cout << out.dump() << std::endl;
  else
    std::printf("gemm %lld^3 %s, %d rank(s) x %d thread(s), median of %d: %.1f GFLOP/s per rank\n",
                static_cast<long long>(a.size), dtype_name(dtype).c_str(), comm->size(),
                torch::get_num_threads(), a.iters, gflops);
  return kExitOk;
}

// One rank's PCA: accumulating `samples` random rows (what compute_subspaces
// does with a task's vectors), then the top-k solver on the result.
int run_pca_bench(const PcaOptions& a) {
  if (a.dim < 1 || a.samples < 1) throw InputError("--dim/--samples", "must be positive");
  if (a.k < 1 || a.k > a.dim) throw InputError("--k", "must be in [1, --dim]");
  if (a.iters < 1) throw InputError("--iters", "must be at least 1");
  const auto dtype = bench_dtype(a.dtype, "--dtype");
  auto comm = make_mpi_communicator();
  torch::NoGradGuard no_grad;
  auto rows = torch::randn({a.samples, a.dim}, torch::kFloat32).to(dtype);
  std::vector<double> acc_s, solve_s;
  for (int i = 0; i < a.iters + 1; ++i) {  // the first of each is a warm-up
    CovarianceAccumulator fresh(a.dim);
    auto start = clock_type::now();
    fresh.add(rows);
    if (i > 0) acc_s.push_back(seconds_since(start));
    start = clock_type::now();
    (void)compute_subspace(fresh, a.k);
    if (i > 0) solve_s.push_back(seconds_since(start));
  }
  auto median = [](std::vector<double> v) {
    std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
    return v[v.size() / 2];
  };
  const double t_acc = median(acc_s), t_solve = median(solve_s);
  // The products run in f32 for f32/bf16/f16 rows, f64 for f64 rows.
  const auto product_dtype = dtype == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32;
  const double gflops = 2.0 * double(a.samples) * double(a.dim) * double(a.dim) / t_acc / 1e9;
  const double peak = gemm_gflops(*comm, torch::kCPU, product_dtype, 2048, 3, 1);
  if (comm->rank() != 0) return kExitOk;
  nlohmann::json out = {{"dim", a.dim},
                        {"samples", a.samples},
                        {"k", a.k},
                        {"dtype", dtype_name(dtype)},
                        {"product_dtype", dtype_name(product_dtype)},
                        {"accumulate_ms", t_acc * 1e3},
                        {"accumulate_gflops", gflops},
                        {"gemm_peak_gflops", peak},
                        {"fraction_of_peak", gflops / peak},
                        {"solve_ms", t_solve * 1e3},
                        {"threads", torch::get_num_threads()}};
  if (a.json) {
    std::cout << out.dump() << std::endl;
  } else {
    std::printf("pca D=%lld N=%lld (%s rows, %s products): accumulate %.1f ms = %.1f GFLOP/s "
                "(%.0f%% of gemm %.1f), top-%lld solve %.1f ms\n",
                static_cast<long long>(a.dim), static_cast<long long>(a.samples),
                dtype_name(dtype).c_str(), dtype_name(product_dtype).c_str(), t_acc * 1e3, gflops,
                100 * gflops / peak, peak, static_cast<long long>(a.k), t_solve * 1e3);
  }
  return kExitOk;
}

int run_step_bench(const StepOptions& a) {
  auto comm = make_mpi_communicator();
  RunConfig cfg;
  std::string error;
  try {
    cfg = load_run_config(a.config, a.sets);
  } catch (const InputError& e) {
    error = e.what();
  }
  if (error.empty()) error = check_device_and_backend(cfg.model.device, cfg.comm.backend);
  agree_on_errors(*comm, error);
  comm->set_timeout(cfg.comm.timeout_s);
  if (comm->rank() != 0) spdlog::set_level(spdlog::level::warn);
  // MPI stays the control plane; comm.backend's communicator carries the step's data.
  DataPlane plane = open_data_plane(cfg.model.device, cfg.comm.backend, cfg.comm.timeout_s);
  cfg.model.device = plane.device;
  const torch::Dtype model_dtype = parse_model_dtype(cfg.model.dtype, "model.dtype");
  // The ceiling first, while nothing else is resident.
  const double peak = a.peak_gflops > 0 ? a.peak_gflops
                                         : gemm_gflops(*comm, torch::Device(cfg.model.device),
                                                       model_dtype, 2048, 5, 1);
  ContinualTrainer trainer(cfg, "", plane.data_or(comm.get()), comm.get());
  ContinualTrainer::StepBench b;
  if (const char* trace = std::getenv("SPARC_PROFILE_TRACE")) {
    // A Chrome trace of every operator (PCA included), for finding where a
    // step's time goes; the timings themselves then carry its overhead.
    torch::autograd::profiler::RecordProfile guard(std::string(trace) + "." +
                                                   std::to_string(comm->rank()));
    b = trainer.bench_steps(a.steps);
  } else {
    b = trainer.bench_steps(a.steps);
  }
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
  StepShape shape;
  shape.batch = cfg.train.batch_size * cfg.train.grad_accum;
  shape.positions = std::int64_t(std::llround(b.mean_example_tokens)) + cfg.prompt.length;
  shape.prompt_len = cfg.prompt.length;
  shape.pca_k = cfg.pca.k;
  shape.classes = std::int64_t(cfg.tasks.front().verbalizer.size());
  shape.method = cfg.method;
  if (cfg.uses_lora()) shape.lora_targets = cfg.lora.targets, shape.lora_rank = cfg.lora.rank;
  shape.prompt_products = cfg.train.grad_accum;
  const StepFlops flops = training_step_flops(m, shape);
  const double tokens_per_step = double(shape.batch) * double(shape.positions);
  const double flops_per_token = flops.total() / tokens_per_step;
  const double achieved_per_rank = flops_per_token * b.tokens_per_s / double(comm->size());
  nlohmann::json out = {
      {"tokens_per_s", b.tokens_per_s}, {"ms_per_step", b.ms_per_step},
      {"grad_allreduce_bytes_per_step", b.grad_bytes_per_step},
      {"gather_bytes_per_step", b.gather_bytes_per_step},
      {"gather_wait_ms_per_step", b.gather_wait_ms_per_step}, {"peak_rss_mb", peak_rss_mb},
      {"vocab_gather_bytes_per_step", b.vocab_bytes_per_step}, {"peak_rss_mb", peak_rss_mb},
      {"world_size", comm->size()}, {"dtype", cfg.model.dtype}, {"d_model", m.dim},
      {"n_layers", m.n_layers}, {"n_heads", m.n_heads}, {"n_kv_heads", m.n_kv_heads},
      {"ffn_dim", m.ffn_dim}, {"vocab", m.vocab_size}, {"seq_len", b.mean_example_tokens},
      {"batch", cfg.train.batch_size * cfg.train.grad_accum}, {"prompt_len", cfg.prompt.length},
      {"pca_k", cfg.pca.k}, {"method", method_name(cfg.method)}, {"steps", b.steps},
      {"trainable_params", b.trainable_params}, {"sharding", cfg.model.sharding},
      {"model_rss_growth_mb", growth_mb}, {"threads", torch::get_num_threads()},
      {"omp_wait_policy", omp_wait_policy()},
      {"model_flops_per_token", flops_per_token},
      {"model_gflops_per_s_per_rank", achieved_per_rank / 1e9},
      {"gemm_peak_gflops", peak}, {"mfu", achieved_per_rank / 1e9 / peak}};
  if (a.json) {
    std::cout << out.dump() << std::endl;
  } else {
    for (const auto& [k, v] : out.items()) std::printf("%-30s %s\n", k.c_str(), v.dump().c_str());
  }
  return kExitOk;
}

}  // namespace sparc::bench
