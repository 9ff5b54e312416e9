#!/usr/bin/env bash
# Two "hosts" as network namespaces on a private bridge (cluster/netns), one
# rank each, launched by launch/mpirun.sh through cluster/netns/launch.sh
# (mpirun on h1, the other host reached by the namespace agent, TCP only):
#   run   the run matches the single-host `mpirun -np 2` reference exactly,
#         rank 1 ran inside h2's namespace and MPI traffic crossed the bridge;
#   kill  SIGKILL to every process of h2 in the middle of task 2: the job
#         exits non-zero within 60 s;
#   stop  SIGSTOP to them instead (a stalled host): rank 0's watchdog reports
#         the grad all-reduce and the job ends within comm.timeout_s + 10 s;
#   term  SIGTERM to the launcher (preemption without Slurm): every rank
#         checkpoints and the job exits 75 within 60 s (needs --resume).
# After kill, stop or term, h2's processes are removed and the job is started again
# with --resume auto: it continues from the last checkpoint (no step of task
# 1 trained again) and matches the reference. That part is skipped (exit 77,
# after the failure part has passed) when the binary has no --resume.
# Namespaces and every process in them are removed on any exit.
# Usage: netns_test.sh run|kill|stop|term SPARC_BINARY PROJECT_ROOT REFERENCE_RUN_DIR
# (SPARC_TEST_KEEP=DIR keeps a copy of the run and logs there.)
set -u
mode=$1
sparc=$2
root=$3
reference=$4
. "$(dirname "$0")/cluster_lib.sh"
[ -s "$reference/results.json" ] || fail "no reference run in $reference (fixture cluster_reference)"
command -v ip >/dev/null || fail "ip (iproute2) missing"
if [ "$mode" = term ] && ! has_resume; then
  skip_test "$sparc has no --resume (sparc train --help): no checkpoint on SIGTERM"
fi

state=$(mktemp -d /tmp/sparc-netns.XXXXXX)
work=$(mktemp -d /tmp/sparc-netns-job.XXXXXX)
cleanup() {
  "$root/cluster/netns/down.sh" "$state" --remove
  [ -n "${SPARC_TEST_KEEP:-}" ] && cp -r "$work" "$SPARC_TEST_KEEP"; rm -rf "$work"
}
trap cleanup EXIT
"$root/cluster/netns/up.sh" "$state" 2 || fail "could not make the network namespaces"
h2=$(awk '$3 == "h2" {print $2}' "$state/hosts")
sw=$(cat "$state/switch")
run=$work/run
timeout_s=10
extra=()
if [ "$mode" != run ] && has_resume; then extra=(--set checkpoint.every_steps=10); fi

start_job() {  # start_job LOG [ARGS]...: the 2-host job in the background; sets job
  local log=$1
  shift
  "$root/cluster/netns/launch.sh" "$state" --sparc "$sparc" "${job_args[@]}" "${extra[@]}" \
    --set comm.timeout_s=$timeout_s --run-dir "$run" "$@" > "$log" 2>&1 &
  job=$!
}
finish() {  # finish SECONDS: waits for the job; sets rc and took (s, from now)
  local t0 deadline
  t0=$(date +%s)
  deadline=$(( t0 + $1 ))
  while kill -0 "$job" 2>/dev/null && [ "$(date +%s)" -lt "$deadline" ]; do sleep 0.2; done
  if kill -0 "$job" 2>/dev/null; then
    rc=124
  else
    wait "$job"
    rc=$?
  fi
  took=$(( $(date +%s) - t0 ))
}
show() { grep -a -v "step [0-9]*/" "$1" | tail -n 25; }

if [ "$mode" = run ]; then
  start_job "$work/log"
  # While it runs: which host runs which rank.
  seen_h2=0
  while kill -0 "$job" 2>/dev/null; do
    for pid in $(ip netns pids "$h2"); do
      [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$(basename "$sparc" | cut -c1-15)" ] && seen_h2=1
    done
    [ $seen_h2 -eq 1 ] && break
    sleep 0.2
  done
  finish 240
  show "$work/log"
  [ $rc -eq 0 ] || fail "2-host run exited $rc"
  [ $seen_h2 -eq 1 ] || fail "no sparc process ran in h2's namespace"
  grep -a -q "2 host(s) x 1 rank(s)" "$work/log" || fail "not 2 hosts x 1 rank"
  grep -a -q "on 2 rank(s)" "$work/log" || fail "sparc did not run on 2 ranks"
  # h2's only link is its bridge port: the job's traffic crossed it.
  bytes=$(ip -n "$sw" -s -j link show p2 | /usr/bin/python3 -c 'import json,sys; s=json.load(sys.stdin)[0]["stats64"]; print(s["rx"]["bytes"] + s["tx"]["bytes"])')
  echo "bridge port of h2: $bytes bytes"
  [ "$bytes" -gt 100000 ] || fail "only $bytes bytes crossed h2's bridge port"
  compare_runs "$reference" "$run" || fail "the 2-host run differs from the single-host reference"
  echo "PASS: 2 hosts over TCP match 1 host"
  exit 0
fi

start_job "$work/log"
wait_for_step "$run" mood 10 180 "$job" || { show "$work/log"; fail "the job did not reach task 2 step 10"; }
signal=$(tr a-z A-Z <<< "$mode")
if [ "$mode" = term ]; then
  echo "SIGTERM to the launcher"
  kill -TERM "$job"
  limit=60
else
  victims=$(ip netns pids "$h2")
  [ -n "$victims" ] || fail "nothing runs on h2"
  echo "SIG$signal to h2's processes:" $(for p in $victims; do cat /proc/$p/comm; done)
  # shellcheck disable=SC2086
  kill -"$signal" $victims
  if [ "$mode" = kill ]; then limit=60; else limit=$((timeout_s + 10)); fi
fi
finish 120
show "$work/log"
echo "job ended $took s after the signal, exit $rc"
[ $rc -ne 124 ] || fail "the job was still running 120 s after the signal"
if [ "$mode" = term ]; then
  [ $rc -eq 75 ] || fail "exit $rc after SIGTERM, expected 75 (checkpointed)"
else
  [ $rc -ne 0 ] || fail "the job exited 0"
fi
[ "$took" -le "$limit" ] || fail "the job took $took s to end, limit $limit s"
if [ "$mode" = stop ]; then
  # Whichever collective rank 0 is in when h2 stops: the step's gradient
  # all-reduce, or the control all-reduce that agrees on a checkpoint write.
  grep -a -E -q "collective [a-z_]+ \(tag [a-z]+, #[0-9]+, [0-9]+ bytes\) waited" "$work/log" ||
    fail "no watchdog report naming the stalled collective"
fi
echo "first part passed: SIG$signal ended the job in $took s (limit $limit s), exit $rc"
ended_in=$took

if ! has_resume; then
  skip_test "resume part: $sparc has no --resume (sparc train --help)"
fi
echo "left on h1: $(ip netns pids "$(awk '$3 == "h1" {print $2}' "$state/hosts")" | xargs -r ps -o pid=,stat=,args= -p | cut -c1-100)"
echo "left on h2: $(ip netns pids "$h2" | xargs -r ps -o pid=,stat=,args= -p | cut -c1-100)"
# A stalled or killed host is restarted clean (its leftovers removed).
for pid in $(ip netns pids "$h2"); do kill -CONT "$pid" 2>/dev/null; kill -KILL "$pid" 2>/dev/null; done
start_job "$work/resume.log" --resume auto
finish 240
show "$work/resume.log"
[ $rc -eq 0 ] || fail "the resumed job exited $rc"
if grep -a -q "task 1/3 'nature' step" "$work/resume.log"; then fail "the resumed job trained task 1 again"; fi
compare_runs "$reference" "$run" || fail "the resumed run differs from the reference"
echo "PASS: SIG$signal: job ended in $ended_in s; resumed and matched the reference"
