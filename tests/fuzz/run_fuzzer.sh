#!/usr/bin/env bash
# Runs one libFuzzer target on its committed inputs (tests/fuzz/corpus/<name>
# and tests/fuzz/regressions/<name>).
#
#   run_fuzzer.sh fuzz   FUZZER NAME   fuzz for SPARC_FUZZ_SECONDS (default 30)
#   run_fuzzer.sh replay FUZZER NAME   run every committed input once
#
# New inputs go to a scratch copy, never into the committed corpus. A crash
# leaves its input in ${SPARC_FUZZ_ARTIFACTS:-./fuzz-artifacts}/NAME/: copy it
# to tests/fuzz/regressions/NAME/ and add a test of the fix to the normal suite.
set -euo pipefail
mode=$1 fuzzer=$2 name=$3
here=$(cd "$(dirname "$0")" && pwd)
inputs=()
for d in "$here/corpus/$name" "$here/regressions/$name"; do
  [ -d "$d" ] && inputs+=("$d")
done
[ ${#inputs[@]} -gt 0 ] || { echo "no corpus for $name in $here/corpus" >&2; exit 1; }

# Leak checking stays on: the parsers allocate nothing they do not free.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# Per input: 10 s, 2 GiB; inputs of at most 64 KiB (the seeds are far smaller).
common=(-timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=2048 -max_len=65536)

case $mode in
  replay)
    exec "$fuzzer" "${common[@]}" -runs=0 "${inputs[@]}"
    ;;
  fuzz)
    seconds=${SPARC_FUZZ_SECONDS:-30}
    artifacts=${SPARC_FUZZ_ARTIFACTS:-$PWD/fuzz-artifacts}/$name
    scratch=$(mktemp -d "${TMPDIR:-/tmp}/sparc-fuzz-$name-XXXXXX")
    trap 'rm -rf "$scratch"' EXIT
    mkdir -p "$artifacts"
    echo "fuzzing $name for ${seconds}s; crashes go to $artifacts/"
    "$fuzzer" "${common[@]}" -max_total_time="$seconds" -print_final_stats=1 \
      -artifact_prefix="$artifacts/" "$scratch" "${inputs[@]}"
    ;;
  *)
    echo "usage: $0 fuzz|replay FUZZER NAME" >&2
    exit 2
    ;;
esac
