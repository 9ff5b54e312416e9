#!/usr/bin/env bash
# Same bits at any scale (SPEC 3, docs/distributed.md): runs shipped configs
# for every method on 1 rank and on N ranks (and sharded), and compares each
# run's results.json, metrics.jsonl (timing aside) and library tensors bit
# for bit against the 1-rank run's (tests/ckpt/compare_runs.py exact).
#
#   scripts/same_bits.sh [--ranks "2 3 4"] [--methods "sparc lora"] [--base-threads N]
#       [--configs "configs/tiny-task-incremental.yaml ..."] [--out DIR]
#       [-- --set key=value ...]   (extra settings for every run, e.g. fewer epochs)
#
# Prints one line per comparison and a summary; exits 1 on any difference.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
sparc=${SPARC_BIN:-$here/build/sparc}
ranks="2 3 4"
base_threads=1
methods="sparc sparc+lora prompt lora full"
configs="$here/configs/tiny-task-incremental.yaml $here/configs/tiny-domain-incremental.yaml"
out=$(mktemp -d /tmp/same-bits.XXXXXX)
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --ranks) ranks=$2; shift 2 ;;
    --base-threads) base_threads=$2; shift 2 ;;
    --methods) methods=$2; shift 2 ;;
    --configs) configs=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --) shift; extra=("$@"); break ;;
    *) echo "same_bits.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# One thread per rank (the 1-rank base: --base-threads): the guarantee's
# condition, though the tiny configs give the same bits on 1 and 2 threads.
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
mkdir -p "$out"

run() {  # run NAME NP CONFIG METHOD [SETTINGS...]
  local name=$1 np=$2 config=$3 method=$4; shift 4
  local dir=$out/$name
  local start=$SECONDS
  if [ "$np" = 1 ]; then
    OMP_NUM_THREADS=$base_threads OPENBLAS_NUM_THREADS=$base_threads \
      "$sparc" train --config "$config" --run-dir "$dir" --set method="$method" "${extra[@]}" "$@" \
      >"$dir.log" 2>&1
  else
    mpirun -np "$np" --oversubscribe "$sparc" train --config "$config" --run-dir "$dir" \
      --set method="$method" "${extra[@]}" "$@" >"$dir.log" 2>&1
  fi
  local rc=$?
  [ $rc = 0 ] || { echo "FAIL $name: exit $rc (log $dir.log)"; return 1; }
  echo "  ran $name in $((SECONDS - start)) s" >&2
}

same() {  # same BASE OTHER: results.json, metrics.jsonl (timing aside) and every tensor
  if /usr/bin/python3 "$here/tests/ckpt/compare_runs.py" exact "$out/$1" "$out/$2" >"$out/$2.compare" 2>&1; then
    echo "same  $2 = $1"
  else
    echo "DIFF  $2 != $1 ($out/$2.compare)"; return 1
  fi
}

fails=0 total=0
for config in $configs; do
  cname=$(basename "$config" .yaml)
  for method in $methods; do
    m=${method//+/-}
    base=$cname.$m.1
    run "$base" 1 "$config" "$method" || { fails=$((fails + 1)); continue; }
    for np in $ranks; do
      total=$((total + 1))
      run "$cname.$m.$np" "$np" "$config" "$method" && same "$base" "$cname.$m.$np" || fails=$((fails + 1))
    done
    [ "$method" = full ] && continue  # full trains the weights: no sharding
    total=$((total + 1))
    run "$cname.$m.2-sharded" 2 "$config" "$method" --set model.sharding=layer &&
      same "$base" "$cname.$m.2-sharded" || fails=$((fails + 1))
  done
done
echo "same_bits: $((total - fails))/$total comparisons identical (runs in $out)"
[ "$fails" = 0 ]
