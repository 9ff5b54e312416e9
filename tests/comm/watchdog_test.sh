#!/usr/bin/env bash
# The watchdog end to end: runs watchdog_mpi_test on 2 ranks, where rank 1
# stops itself before a collective, and checks that the job exits non-zero
# within the watchdog timeout + 10 s with rank 0's one-line report naming
# the collective, the tag and the missing rank. Leaves no process behind,
# a stopped one included.
# Usage: watchdog_test.sh MPIEXEC WATCHDOG_BINARY [stop|sleep]
set -u
mpiexec=$1
binary=$2
mode=${3:-stop}
watchdog_s=3
limit_s=$((watchdog_s + 10))

work=$(mktemp -d "${TMPDIR:-/tmp}/sparc-watchdog-XXXXXX")
cleanup() {
  # Only the test's own ranks, by the pids they wrote, and only if the pid
  # still runs our binary. A stopped process ignores SIGTERM: SIGKILL it.
  for f in "$work"/rank*.pid; do
    [ -e "$f" ] || continue
    pid=$(cat "$f")
    if grep -qs "watchdog_mpi_test" "/proc/$pid/cmdline"; then
      kill -KILL "$pid" 2>/dev/null
      kill -CONT "$pid" 2>/dev/null
    fi
  done
  rm -rf "$work"
}
trap cleanup EXIT

start=$SECONDS
timeout --kill-after=5 "$limit_s" \
  "$mpiexec" -np 2 --oversubscribe "$binary" "$watchdog_s" "$mode" "$work" >"$work/out" 2>&1
rc=$?
elapsed=$((SECONDS - start))
cat "$work/out"
echo "watchdog_test: exit status $rc after ${elapsed} s"

fail() {
  echo "watchdog_test: FAIL: $*"
  exit 1
}
[ "$rc" -ne 0 ] || fail "the job exited 0"
if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then fail "the job did not end within $limit_s s"; fi
[ "$elapsed" -le "$limit_s" ] || fail "took $elapsed s (limit $limit_s s)"
grep -q "rank 0: collective all_reduce (tag grad, #3, 4096 bytes) waited" "$work/out" ||
  fail "no report naming the collective and the tag"
grep -q "ranks not arrived: 1$" "$work/out" || fail "the report does not name rank 1"
grep -q "the watchdog did not fire" "$work/out" && fail "a rank passed the stalled collective"
echo "watchdog_test: PASS"
