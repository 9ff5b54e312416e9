// The `sparc` binary: parses the command line and runs one subcommand.
// Every error ends here: user errors (InputError, bad arguments) print one
// line and exit 2; anything else is an internal error and exits 1. Nothing
// prints a LibTorch stack dump.
#include <dlfcn.h>
#include <mpi.h>
#include <torch/torch.h>

#include <algorithm>
#include <cstdlib>
#include <iostream>
#include <string>

#include <spdlog/spdlog.h>

#include "cli/commands.h"
#include "comm/agreement.h"
#include "core/error.h"
#include "core/log.h"
#include "core/memory.h"
#include "core/storage.h"
#include "core/threads.h"

namespace {

void apply_threads(int threads) {
  torch::set_num_threads(threads);
  // LibTorch's set_num_threads does not reach OpenBLAS's own thread pool
  // (pthread OpenBLAS): each rank gets the same count there too.
  using SetThreads = void (*)(int);
  if (auto set_blas = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads")))
    set_blas(threads);
}

std::string version_text() {
  std::string s = std::string("sparc ") + SPARC_VERSION + " (LibTorch " + TORCH_VERSION;
  s += torch::cuda::is_available() ? " with CUDA" : " CPU";
#ifdef SPARC_WITH_NCCL
  s += "; NCCL backend built";
#endif
  return s + ")";
}

// LibTorch errors carry a backtrace after the first line: keep the message.
std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

// One write per line, so lines of several ranks sharing a terminal never interleave.
void report(const char* prefix, const std::string& message) {
  std::cerr << (prefix + message + "\n") << std::flush;
}

// A rank failing alone would leave its peers waiting in their next
// collective until the watchdog fires: take the whole job down now.
int abort_peers(int code) {
  int initialized = 0, finalized = 0, size = 1;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (initialized && !finalized) {
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (size > 1) MPI_Abort(MPI_COMM_WORLD, code);
  }
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  sparc::passive_openmp_wait_for_threaded_runs(argc, argv);  // may re-exec: first
  sparc::keep_freed_memory_for_reuse();
  CLI::App app{"sparc: continual learning of a frozen LLM with subspace prompts (SPARC)"};
  app.set_version_flag("--version", version_text());
  app.require_subcommand(1);
  std::string log_level = "info";
  int threads = 0;
  app.add_option("--threads", threads,
                 "intra-op and BLAS threads of this rank (default: OMP_NUM_THREADS, else "
                 "the processors its launcher gave it: CPU affinity, cgroup quota, "
                 "processors / ranks on this node)");
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error or off")
      ->capture_default_str();
  std::vector<sparc::cli::Command> commands;
  sparc::cli::add_demo_command(app, commands);
  sparc::cli::add_train_command(app, commands);
  sparc::cli::add_eval_command(app, commands);
  sparc::cli::add_generate_command(app, commands);
  sparc::cli::add_tokenize_command(app, commands);
  sparc::cli::add_convert_command(app, commands);
  sparc::cli::add_random_model_command(app, commands);
  sparc::cli::add_bench_command(app, commands);
  sparc::cli::add_pretrain_command(app, commands);
  sparc::cli::add_prepare_data_command(app, commands);
  sparc::cli::add_inspect_command(app, commands);
  sparc::cli::add_export_peft_command(app, commands);
  sparc::cli::add_report_command(app, commands);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "sparc: error: " << e.what() << " (see sparc --help)\n";
    return sparc::kExitInputError;
  }

  try {
    sparc::init_logging(log_level);
    // Not given (or not positive): OMP_NUM_THREADS, else the processors the
    // launcher gave this rank, as the wait-policy choice read them.
    std::string why;
    const bool requested = sparc::requested_threads(argc, argv) > 0;
    threads = sparc::resolved_threads(argc, argv, &why);
    apply_threads(threads);
    sparc::record_thread_choice(threads, requested, why, apply_threads);
    for (const auto& c : commands)
      if (c.app->parsed()) {
        // At debug only: an input error stays one line. `sparc train` and
        // `pretrain` name the threads in their start-up lines.
        spdlog::debug("{}", sparc::thread_choice_text());
        return c.run();
      }
    return sparc::kExitInputError;
  } catch (const sparc::StopRequested& e) {
    // Every rank agreed to stop after the same step; the checkpoint is written.
    report("sparc: ", e.what());
    return sparc::kExitResumable;
  } catch (const sparc::StorageError& e) {
    // A checkpoint or run-directory write failed; agreed: every rank stops with it.
    report("sparc: error: ", e.what());
    return e.agreed() ? sparc::kExitStorage : abort_peers(sparc::kExitStorage);
  } catch (const sparc::AgreedError& e) {
    // Every rank reached the same verdict: each exits normally with it.
    report("sparc: error: ", e.what());
    return sparc::kExitInputError;
  } catch (const sparc::InputError& e) {
    report("sparc: error: ", e.what());
    return abort_peers(sparc::kExitInputError);
  } catch (const c10::Error& e) {
    report("sparc: internal error: ", first_line(e.what_without_backtrace()));
    return abort_peers(sparc::kExitInternal);
  } catch (const std::exception& e) {
    report("sparc: internal error: ", first_line(e.what()));
    return abort_peers(sparc::kExitInternal);
  }
}
