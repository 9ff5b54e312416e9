// sparc bench <what>: performance measurements (src/bench/bench.h). Each
// kind is a sub-subcommand registered by its own add_*_bench function below.
#include "bench/bench.h"
#include "cli/commands.h"
#include "core/error.h"

namespace sparc::cli {
namespace {

void add_allreduce_bench(CLI::App& parent, std::vector<Command>& kinds) {
  auto a = std::make_shared<bench::AllreduceOptions>();
  auto* sub = parent.add_subcommand(
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
  kinds.push_back({sub, [a]() { return bench::run_allreduce_bench(*a); }});
}

void add_gemm_bench(CLI::App& parent, std::vector<Command>& kinds) {
  auto a = std::make_shared<bench::GemmOptions>();
  auto* sub = parent.add_subcommand(
      "gemm", "Matrix-product peak per rank (GFLOP/s of n^3 products, every rank at once): "
              "the ceiling for bench step's MFU");
  sub->add_option("--dtype", a->dtype, "f32, bf16, f16 or f64")->capture_default_str();
  sub->add_option("--size", a->size, "n of the n x n x n product")->capture_default_str();
  sub->add_option("--iters", a->iters, "timed products")->capture_default_str();
  sub->add_option("--warmup", a->warmup, "untimed products first")->capture_default_str();
  sub->add_option("--backend", a->backend, "mpi or nccl (nccl: on the GPU)")
      ->capture_default_str();
  sub->add_flag("--json", a->json, "one JSON line on stdout");
  kinds.push_back({sub, [a]() { return bench::run_gemm_bench(*a); }});
}

void add_pca_bench(CLI::App& parent, std::vector<Command>& kinds) {
  auto a = std::make_shared<bench::PcaOptions>();
  auto* sub = parent.add_subcommand(
      "pca", "PCA: covariance accumulation (GFLOP/s, against the gemm peak of its products) "
             "and the top-k eigensolver's time");
  sub->add_option("--dim", a->dim, "vector dimension D")->capture_default_str();
  sub->add_option("--samples", a->samples, "vectors N")->capture_default_str();
  sub->add_option("--k", a->k, "subspace dimension")->capture_default_str();
  sub->add_option("--dtype", a->dtype, "dtype of the vectors: f32, bf16, f16 or f64")
      ->capture_default_str();
  sub->add_option("--iters", a->iters, "timed repetitions (median)")->capture_default_str();
  sub->add_flag("--json", a->json, "one JSON line on stdout");
  kinds.push_back({sub, [a]() { return bench::run_pca_bench(*a); }});
}

void add_step_bench(CLI::App& parent, std::vector<Command>& kinds) {
  auto a = std::make_shared<bench::StepOptions>();
  auto* sub = parent.add_subcommand(
      "step", "Time optimizer steps of a run config's first task (data parallel under mpirun)");
  sub->add_option("--config", a->config, "run configuration (YAML)")->required();
  sub->add_option("--set", a->sets, "override a config key: key.path=value (repeatable)");
  sub->add_option("--steps", a->steps, "timed steps (after one warm-up step)")
      ->check(CLI::Range(1, 1000000))
      ->capture_default_str();
  sub->add_option("--peak-gflops", a->peak_gflops,
                  "GEMM peak per rank for MFU (default: measured, 2048^3 in the model dtype)");
  sub->add_flag("--json", a->json, "one JSON line on stdout");
  kinds.push_back({sub, [a]() { return bench::run_step_bench(*a); }});
}

}  // namespace

void add_bench_command(CLI::App& app, std::vector<Command>& commands) {
  auto* bench = app.add_subcommand("bench", "Measure performance (see sparc bench --help)");
  bench->require_subcommand(1);
  auto kinds = std::make_shared<std::vector<Command>>();
  add_allreduce_bench(*bench, *kinds);
  add_step_bench(*bench, *kinds);
  add_gemm_bench(*bench, *kinds);
  add_pca_bench(*bench, *kinds);
  // Further kinds: add_<what>_bench(*bench, *kinds).
  commands.push_back({bench, [kinds]() {
    for (const auto& k : *kinds)
      if (k.app->parsed()) return k.run();
    return kExitInputError;
  }});
}

}  // namespace sparc::cli
