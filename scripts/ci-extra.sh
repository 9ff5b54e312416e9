#!/usr/bin/env bash
# The reliability jobs CI runs after the main test suite (.ci/run), each
# phase timed:
#   1. fuzz build: the LibTorch-free parser library, its tests and the
#      libFuzzer targets, built with clang and ASan+UBSan (build-fuzz/)
#   2. the parser tests under ASan+UBSan, leak checking on, and a replay of
#      every committed fuzz input (seeds and regressions)
#   3. every fuzzer for SPARC_FUZZ_SECONDS (default 30) on its seed corpus
#   4. sanitizer build: the engine, the sparc binary and the communicator's
#      MPI tests with gcc and ASan+UBSan (build-asan/)
#   5. the communicator's MPI tests (tests/comm) and the CLI's bad-input tests
#      under ASan+UBSan, leak checking off (see docs/reliability.md)
#
#   scripts/ci-extra.sh               all phases
#   scripts/ci-extra.sh fuzz          phases 1-3
#   scripts/ci-extra.sh asan          phases 4-5
#   SPARC_FUZZ_SECONDS=300 scripts/ci-extra.sh fuzz    fuzz longer
# Needs the packages of scripts/setup.sh (clang and libclang-rt-14-dev among them).
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-all}
jobs=$(nproc)
start=$(date +%s)
times=()
last=$start
phase() { printf '\n=== %s (at %ds)\n' "$1" "$(( $(date +%s) - start ))"; }
done_phase() {
  local now
  now=$(date +%s)
  times+=("$1 $((now - last))s")
  last=$now
}
failed=0

if [ "$what" = all ] || [ "$what" = fuzz ]; then
  phase "fuzz build (clang, ASan+UBSan, build-fuzz/)"
  CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DSPARC_FORMATS_ONLY=ON -DSPARC_FUZZ=ON -DSPARC_SANITIZE=address,undefined >/dev/null
  cmake --build build-fuzz -j "$jobs"
  done_phase "fuzz-build"

  phase "parser tests under ASan+UBSan (leak checking on) and fuzz input replay"
  # Every test of this LibTorch-free build but the fuzzers themselves (label
  # fuzz, next phase): unit, the real-source prepare cases (integration) and
  # the replays (fuzz-replay).
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir build-fuzz --output-on-failure -j "$jobs" -LE '^fuzz$' || failed=1
  done_phase "parser-tests"

  phase "fuzzers, ${SPARC_FUZZ_SECONDS:-30}s each"
  ctest --test-dir build-fuzz --output-on-failure -j "$jobs" -L '^fuzz$' || failed=1
  done_phase "fuzzing"
fi

if [ "$what" = all ] || [ "$what" = asan ]; then
  phase "sanitizer build (gcc, ASan+UBSan, build-asan/)"
  cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DSPARC_SANITIZE=address,undefined >/dev/null
  cmake --build build-asan -j "$jobs" --target sparc communicator_mpi_test watchdog_mpi_test cli_test
  done_phase "asan-build"

  phase "communicator MPI tests and CLI bad-input tests under ASan+UBSan"
  # Open MPI's and LibTorch's own allocations that live until exit are
  # reported as leaks from uninstrumented modules: leak checking is off here
  # (it stays on for the parser tests above). Every other ASan/UBSan report
  # ends the process with an error.
  # The stalled-rank test's 5 s watchdog is shorter than the imbalance
  # between two ASan ranks in evaluation, and its 15 s for start-up too
  # short: 30 s and 60 s here.
  SPARC_STALLED_RANK_TIMEOUT_S=30 SPARC_STALLED_RANK_STARTUP_S=60 \
  ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir build-asan --output-on-failure -j "$jobs" \
      -R '^(comm_|startup_agreement_|stalled_rank_|bench_step_)|^Cli|^MalformedInput|^TrainErrors' || failed=1
  done_phase "asan-tests"
fi

printf '\n=== ci-extra phase times: %s; total %ds\n' "${times[*]}" "$(( $(date +%s) - start ))"
exit $failed
