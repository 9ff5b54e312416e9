#!/usr/bin/env bash
# Starts `sparc train` under Open MPI's mpirun, on this host or on several.
#
#   launch/mpirun.sh [OPTIONS] [--] SPARC_TRAIN_ARGS...
#
#   -H, --hosts H1,H2,..     hosts to run on (default: this host only)
#   --hostfile FILE          hosts, one per line (first word; '#' comments)
#   -n, --ranks-per-host N   ranks on every host (default: its GPUs, else 1)
#   --cores-per-host N       cores of every host (default: this host's, nproc)
#   --gpus-per-host N        GPUs of every host (default: nvidia-smi's count, else 0)
#   --sparc PATH             the binary (default: $SPARC, else sparc on PATH,
#                            else build/sparc of this checkout); the same path
#                            must exist on every host
#   --mca KEY VALUE          an Open MPI parameter for mpirun (repeatable)
#   --mpirun-arg ARG         any other mpirun argument (repeatable)
#   --no-resume              do not add `--resume auto`
#   --dry-run                print the command instead of running it
#
# Environment: SPARC_ABORT_GRACE_S (default 5): seconds mpirun may take to
# end the job after a rank's MPI_Abort before it is killed (a stalled host).
# Passed on to every rank on every host (mpirun -x) when set here: NCCL_*,
# CUDA_VISIBLE_DEVICES (the GPUs a host may use; rank.sh takes the local
# rank's entry, and it sets the default GPU count), CUDA_DEVICE_ORDER,
# CUDA_DEVICE_MAX_CONNECTIONS, CUDA_LAUNCH_BLOCKING, CUDA_MODULE_LOADING,
# PYTORCH_CUDA_ALLOC_CONF.
#
# Every rank gets OMP_NUM_THREADS = OPENBLAS_NUM_THREADS =
# max(1, cores per host / ranks per host) and, on GPU hosts, the GPU of its
# local rank (launch/rank.sh). `--resume auto` is added unless the arguments
# name --resume, so a restarted job continues from its newest checkpoint.
# SIGTERM or SIGINT to this script: every rank checkpoints and exits 75.
# As root, Open MPI's run-as-root variables are set (and only then).
# Exit status: mpirun's (75: every rank checkpointed after SIGTERM), or 1
# when mpirun had to be killed after an MPI_Abort.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
usage() { sed -n '2,34p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-2}"; }

hosts=()
ranks_per_host=""
cores_per_host=$(nproc)
gpus_per_host=""
sparc=${SPARC:-}
mpirun_args=()
resume=1
dry_run=0
while [ $# -gt 0 ]; do
  case $1 in
    -H|--hosts) IFS=, read -ra hosts <<< "$2"; shift 2 ;;
    --hostfile)
      [ -r "$2" ] || { echo "mpirun.sh: cannot read hostfile $2" >&2; exit 2; }
      mapfile -t hosts < <(sed 's/#.*//' "$2" | awk 'NF {print $1}')
      shift 2 ;;
    -n|--ranks-per-host) ranks_per_host=$2; shift 2 ;;
    --cores-per-host) cores_per_host=$2; shift 2 ;;
    --gpus-per-host) gpus_per_host=$2; shift 2 ;;
    --sparc) sparc=$2; shift 2 ;;
    --mca) mpirun_args+=(--mca "$2" "$3"); shift 3 ;;
    --mpirun-arg) mpirun_args+=("$2"); shift 2 ;;
    --no-resume) resume=0; shift ;;
    --dry-run) dry_run=1; shift ;;
    -h|--help) usage 0 ;;
    --) shift; break ;;
    *) break ;;
  esac
done
[ $# -gt 0 ] || { echo "mpirun.sh: no sparc train arguments (at least --config FILE)" >&2; usage; }

number() { [[ $2 =~ ^[0-9]+$ ]] || { echo "mpirun.sh: $1 must be a whole number, got '$2'" >&2; exit 2; }; }
if [ -z "$gpus_per_host" ] && [ -n "${CUDA_VISIBLE_DEVICES:-}" ]; then
  IFS=, read -ra visible_gpus <<< "$CUDA_VISIBLE_DEVICES"
  gpus_per_host=${#visible_gpus[@]}
fi
if [ -z "$gpus_per_host" ]; then
  gpus_per_host=0
  if command -v nvidia-smi >/dev/null; then
    gpus_per_host=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
  fi
fi
number --gpus-per-host "$gpus_per_host"
if [ -z "$ranks_per_host" ]; then
  ranks_per_host=$gpus_per_host
  [ "$ranks_per_host" -ge 1 ] || ranks_per_host=1
fi
number --ranks-per-host "$ranks_per_host"
number --cores-per-host "$cores_per_host"
[ "$ranks_per_host" -ge 1 ] || { echo "mpirun.sh: --ranks-per-host must be at least 1" >&2; exit 2; }
if [ "$gpus_per_host" -gt 0 ] && [ "$ranks_per_host" -gt "$gpus_per_host" ]; then
  echo "mpirun.sh: $ranks_per_host ranks per host but $gpus_per_host GPU(s) per host" >&2
  exit 2
fi
threads=$((cores_per_host / ranks_per_host))
[ "$threads" -ge 1 ] || threads=1

if [ -z "$sparc" ]; then
  sparc=$(command -v sparc || echo "$here/../build/sparc")
fi
[ -x "$sparc" ] || { echo "mpirun.sh: sparc binary not found or not executable: $sparc" >&2; exit 2; }
sparc=$(cd "$(dirname "$sparc")" && pwd)/$(basename "$sparc")

train_args=("$@")
if [ $resume -eq 1 ]; then
  named=0
  for a in "${train_args[@]}"; do
    case $a in --resume|--resume=*) named=1 ;; esac
  done
  if [ $named -eq 0 ]; then
    if "$sparc" train --help 2>/dev/null | grep -q -- '--resume'; then
      train_args+=(--resume auto)
    else
      echo "mpirun.sh: $sparc has no --resume: starting from scratch" >&2
    fi
  fi
fi

if [ ${#hosts[@]} -eq 0 ]; then
  host_list=localhost:$ranks_per_host
  nhosts=1
else
  host_list=$(printf "%s:$ranks_per_host," "${hosts[@]}")
  host_list=${host_list%,}
  nhosts=${#hosts[@]}
fi
np=$((nhosts * ranks_per_host))

env_vars=(OMP_NUM_THREADS="$threads" OPENBLAS_NUM_THREADS="$threads" SPARC_GPUS_PER_HOST="$gpus_per_host"
          SPARC_TERM_VIA=USR2)
if [ "$(id -u)" -eq 0 ]; then
  env_vars+=(OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1)
fi
cmd=(mpirun -np "$np" --host "$host_list" --bind-to none
     -x OMP_NUM_THREADS -x OPENBLAS_NUM_THREADS -x SPARC_GPUS_PER_HOST -x SPARC_TERM_VIA)
# NCCL's and CUDA's settings reach the ranks on other hosts only through -x.
gpu_env=$(compgen -e | grep -E '^(NCCL_[A-Z0-9_]+|CUDA_VISIBLE_DEVICES|CUDA_DEVICE_ORDER|CUDA_DEVICE_MAX_CONNECTIONS|CUDA_LAUNCH_BLOCKING|CUDA_MODULE_LOADING|PYTORCH_CUDA_ALLOC_CONF)$' | sort || true)
for name in $gpu_env; do cmd+=(-x "$name"); done
# More ranks than cores: let Open MPI place them and yield when idle.
[ "$ranks_per_host" -le "$cores_per_host" ] || cmd+=(--oversubscribe)
cmd+=("${mpirun_args[@]}" "$here/rank.sh" "$sparc" train "${train_args[@]}")

echo "mpirun.sh: $nhosts host(s) x $ranks_per_host rank(s), $threads thread(s) per rank, $gpus_per_host GPU(s) per host" >&2
if [ $dry_run -eq 1 ]; then
  printf '%q ' env "${env_vars[@]}" "${cmd[@]}"
  echo
  exit 0
fi

# After a rank calls MPI_Abort (the watchdog does, on a stalled or dead
# peer), mpirun waits until every host's daemon confirms that its ranks are
# gone. A stalled host (stopped, swapping to death, half-dead NIC) never
# confirms, and mpirun would hang with it. So the launcher watches for the
# end of the job: the first of (1) every rank on this host has exited (they
# are mpirun's children running rank.sh), (2) mpirun's stderr shows the
# abort or a watchdog report. If mpirun is still there abort_grace seconds
# later, it is killed (the daemons of the healthy hosts then end their
# ranks) and the launcher exits 1. (1) needs no message: Open MPI's abort
# notice can itself get lost on its way from a rank to mpirun.
# Preemption: mpirun answers SIGTERM by killing the ranks within a second, so
# the launcher sends SIGUSR2 instead, which mpirun forwards to every rank,
# and launch/rank.sh hands it to sparc as SIGTERM: every rank finishes its
# step, rank 0 checkpoints, all exit 75, and so do mpirun and this script.
abort_grace=${SPARC_ABORT_GRACE_S:-5}
marker=$(mktemp)
trap 'rm -f "$marker"' EXIT
env "${env_vars[@]}" "${cmd[@]}" 2> >(
  while IFS= read -r line; do
    printf '%s\n' "$line" >&2
    case $line in
      *"MPI_ABORT was invoked"*|"sparc: rank "*": collective "*" waited "*)
        [ -s "$marker" ] || date +%s > "$marker" ;;
    esac
  done
) &
mpirun_pid=$!
stop_ranks() {
  echo "mpirun.sh: SIG$1: asking every rank to checkpoint and exit (75)" >&2
  kill -USR2 "$mpirun_pid" 2>/dev/null
}
trap 'stop_ranks TERM' TERM
trap 'stop_ranks INT' INT
# The ranks on this host, as mpirun's children running rank.sh (each leads
# its own process group). Whatever of them outlives mpirun is killed when
# the launcher exits: no rank of an ended job may go on writing to its run.
known_ranks=" "
reap_ranks() {
  local pid
  for pid in $known_ranks; do
    if kill -0 "$pid" 2>/dev/null && grep -q "rank.sh" "/proc/$pid/cmdline" 2>/dev/null; then
      echo "mpirun.sh: rank process $pid outlived mpirun: killing it" >&2
      kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null
    fi
  done
  rm -f "$marker"
}
trap reap_ranks EXIT
seen_local=0
ended_at=""
while kill -0 "$mpirun_pid" 2>/dev/null; do
  if [ -z "$ended_at" ]; then
    ranks=$(pgrep -P "$mpirun_pid" -f "$here/rank.sh" 2>/dev/null || true)
    for pid in $ranks; do
      case $known_ranks in *" $pid "*) ;; *) known_ranks+="$pid " ;; esac
    done
    if [ -n "$ranks" ]; then
      seen_local=1
    elif [ $seen_local -eq 1 ]; then
      ended_at=$(date +%s)
    fi
  fi
  since=${ended_at:-}
  why="every rank on this host exited"
  if [ -s "$marker" ] && { [ -z "$since" ] || [ "$(cat "$marker")" -lt "$since" ]; }; then
    since=$(cat "$marker")
    why="a rank reported a stall or called MPI_Abort"
  fi
  if [ -n "$since" ] && [ $(( $(date +%s) - since )) -ge "$abort_grace" ]; then
    echo "mpirun.sh: $why ${abort_grace} s ago and mpirun still waits (for a stalled host?): killing it" >&2
    ps -o pid,ppid,stat,args --ppid "$mpirun_pid" >&2 || true
    kill -KILL "$mpirun_pid" 2>/dev/null
    wait "$mpirun_pid" 2>/dev/null || true
    exit 1
  fi
  sleep 0.5 & wait $! 2>/dev/null || true
done
rc=0
wait "$mpirun_pid" || rc=$?
exit $rc
