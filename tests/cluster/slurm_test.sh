#!/usr/bin/env bash
# launch/slurm.sbatch on a throwaway one-node Slurm cluster
# (cluster/local-slurm), 2 tasks, srun --mpi=pmix:
#   run      the job completes and its run matches the plain `mpirun -np 2`
#            reference exactly (results.json and every library tensor);
#   requeue  `scancel --signal=TERM` in the middle of the second task: the
#            ranks checkpoint and exit 75, the job requeues itself, the second
#            start resumes from the checkpoint (no task-1 step is trained again)
#            and the run still matches the reference. Skipped when the binary
#            has no --resume.
# Daemons, jobs and state are removed on any exit.
# Usage: slurm_test.sh run|requeue SPARC_BINARY PROJECT_ROOT REFERENCE_RUN_DIR PORT_BASE
set -u
mode=$1
sparc=$2
root=$3
reference=$4
port=$5
. "$(dirname "$0")/cluster_lib.sh"
if [ "$mode" = requeue ] && ! has_resume; then
  skip_test "$sparc has no --resume (sparc train --help), needed to resume a requeued job"
fi
[ -s "$reference/results.json" ] || fail "no reference run in $reference (fixture cluster_reference)"
for tool in sbatch squeue scontrol scancel slurmctld slurmd munged; do
  command -v $tool >/dev/null || fail "$tool missing (scripts/setup.sh installs slurmctld slurmd slurm-client munge)"
done

state=$(mktemp -d /tmp/sparc-slurm.XXXXXX)
work=$(mktemp -d /tmp/sparc-slurm-job.XXXXXX)
cleanup() {
  "$root/cluster/local-slurm/stop.sh" "$state" --remove
  rm -rf "$work"
}
trap cleanup EXIT
"$root/cluster/local-slurm/start.sh" "$state" --port-base "$port" --cpus 2 || fail "the local cluster did not start"
export SLURM_CONF=$state/slurm.conf
mkdir -p "$state/jobs"
run=$work/run
extra=()
# Checkpoints every 10 steps, so the preempted job has recent ones (the TERM
# path writes its own as well).
[ "$mode" = requeue ] && extra=(--set checkpoint.every_steps=10)

# The job's output lands under the state directory, where stop.sh looks for leftovers.
jid=$(cd "$root" && SPARC="$sparc" sbatch --parsable --nodes=1 --ntasks-per-node=2 \
      --output="$state/jobs/job-%j.out" launch/slurm.sbatch "${job_args[@]}" "${extra[@]}" --run-dir "$run") \
  || fail "sbatch refused the job"
out=$state/jobs/job-$jid.out
echo "job $jid submitted"
field() { scontrol show job "$jid" 2>/dev/null | grep -o "$1=[^ ]*" | head -1 | cut -d= -f2; }

if [ "$mode" = requeue ]; then
  # Wait until the second task is under way, then preempt.
  wait_for_step "$run" mood 10 180 || { cat "$out"; fail "the job did not reach task 2 step 10"; }
  [ "$(field JobState)" = RUNNING ] || fail "job not running before the signal: $(field JobState)"
  scancel --signal=TERM "$jid" || fail "scancel --signal=TERM failed"
  echo "job $jid: SIGTERM sent to its steps at $(date +%T)"
fi

# Done when COMPLETED or FAILED etc. (PENDING/RUNNING/REQUEUED/COMPLETING: keep waiting).
deadline=$(( $(date +%s) + 300 ))
while :; do
  st=$(field JobState)
  case $st in
    COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY|PREEMPTED|BOOT_FAIL|DEADLINE) break ;;
  esac
  [ "$(date +%s)" -lt "$deadline" ] || { cat "$out"; fail "job $jid still $st after 300 s"; }
  sleep 1
done
echo "--- job output"
grep -a -v "step [0-9]*/" "$out"
echo "---"
[ "$st" = COMPLETED ] || fail "job ended $st (exit $(field ExitCode))"
[ "$(field ExitCode)" = 0:0 ] || fail "exit code $(field ExitCode)"
grep -a -q "1 node(s) x 2 task(s), 1 thread(s) per task" "$out" || fail "not 2 tasks with 1 thread each"
grep -a -q "on 2 rank(s)" "$out" || fail "sparc did not run on 2 ranks"

restarts=$(field Restarts)
if [ "$mode" = run ]; then
  [ "$restarts" = 0 ] || fail "restarted $restarts times"
else
  [ "$restarts" = 1 ] || fail "restarts: $restarts, expected 1"
  grep -a -q "exited 75 (preempted): requeueing job $jid" "$out" || fail "no requeue after exit 75"
  grep -a -q "job $jid restart 1 " "$out" || fail "no second start"
  # The second start continues task 2: it trains no step of task 1.
  second=$(sed -n "/job $jid restart 1 /,\$p" "$out")
  if grep -a -q "task 1/3 'nature' step" <<< "$second"; then fail "the requeued job trained task 1 again"; fi
  grep -a -q "task 2/3 'mood' step" <<< "$second" || fail "the requeued job did not continue task 2"
fi
compare_runs "$reference" "$run" || fail "the Slurm run differs from the mpirun -np 2 reference"
echo "PASS: sbatch $mode: job $jid completed, restarts $restarts, matches mpirun -np 2"
