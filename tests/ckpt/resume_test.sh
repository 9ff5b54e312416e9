#!/usr/bin/env bash
# Checkpoints end to end (SPEC 4) on the tiny config (sparc+lora with LoRA
# dropout and early stopping, 2 epochs, a checkpoint every 2 steps).
# Interruptions are injected at exact points (SPARC_FAULT), never timed.
#   1rank:  SIGKILL mid-task and in the middle of a checkpoint write, then
#           --resume auto: results.json, metrics.jsonl (timings aside) and every
#           tensor bit-identical to an uninterrupted run; a truncated and a
#           byte-flipped newest checkpoint are named and skipped; SIGTERM
#           gives exit 75 within seconds with a checkpoint of that step, and
#           resuming from it matches; a changed config is refused; the file
#           reads with the HDF5 C API by names alone; export-peft runs.
#   methods: kill and resume for prompt, lora and full (task-incremental)
#           and sparc, sparc+lora (domain-incremental, routing): bit-identical.
#   2ranks: the same kills under mpirun -np 2 (bit-identical to an
#           uninterrupted 2-rank run), SIGTERM on both ranks, and other world
#           sizes (SPEC 3): the 2-rank run, a 2-rank run SIGKILLed mid-task
#           and resumed on 3 ranks, and a 1-rank checkpoint resumed on 2
#           ranks, each bit-identical to the uninterrupted 1-rank run.
# Usage: resume_test.sh SPARC_BINARY PROJECT_ROOT HDF5_READER 1rank|methods|2ranks
set -u
sparc=$1
root=$2
reader=$3
mode=$4
. "$root/tests/comm/mpi_test_lib.sh"
py=/usr/bin/python3
require_python numpy
work=$(mktemp -d)
cleanup() {
  for pid in $(pgrep -f "run-dir $work/" || true); do kill -CONT "$pid" 2>/dev/null; kill -KILL "$pid" 2>/dev/null; done
  rm -rf "$work"
}
trap cleanup EXIT
cfg="$root/configs/tiny-task-incremental.yaml"
sets=(--set method=sparc+lora --set train.epochs=2 --set train.max_train_examples=64
      --set eval.max_examples=60 --set train.early_stop_patience=1 --set checkpoint.every_steps=2
      --set checkpoint.keep=3 --set comm.timeout_s=60)
compare() { $py "$root/tests/ckpt/compare_runs.py" "$@" || fail "$2 vs $3 ($1)"; }

# run NP NAME [extra args]: a training run; SPARC_FAULT/SPARC_FAULT_RANK come from the environment.
run() {
  local np=$1 name=$2
  shift 2
  export SPARC_FAULT=${SPARC_FAULT:-} SPARC_FAULT_RANK=${SPARC_FAULT_RANK:-}
  if [ "$np" = 1 ]; then
    timeout 300 "$sparc" --log-level info train --config "$cfg" --run-dir "$work/$name" "${sets[@]}" "$@"
  else
    timeout 300 mpirun -np "$np" --oversubscribe -x SPARC_FAULT -x SPARC_FAULT_RANK \
      "$sparc" --log-level info train --config "$cfg" --run-dir "$work/$name" "${sets[@]}" "$@"
  fi
}

# kill_and_resume NP NAME REFERENCE FAULT [RANK]: the run dies at FAULT, then
# resumes (same world size) and must equal REFERENCE bit for bit.
kill_and_resume() {
  local np=$1 name=$2 ref=$3 fault=$4 rank=${5:-}
  SPARC_FAULT=$fault SPARC_FAULT_RANK=$rank run "$np" "$name" > "$work/$name.kill.log" 2>&1
  local rc=$?
  [ $rc -ne 0 ] || fail "$name: the injected kill ($fault) did not stop the run"
  [ ! -f "$work/$name/results.json" ] || fail "$name: results.json written despite the kill"
  ls "$work/$name/checkpoints" | sed "s/^/  $name: /"
  if [[ $fault == kill@checkpoint-write* ]]; then
    compgen -G "$work/$name/checkpoints/*.h5.tmp" > /dev/null || fail "$name: no partly written .tmp left"
  fi
  SPARC_FAULT= SPARC_FAULT_RANK= run "$np" "$name" --resume auto > "$work/$name.resume.log" 2>&1 ||
    { tail -5 "$work/$name.resume.log"; fail "$name: resume failed"; }
  grep -a -q "resuming from" "$work/$name.resume.log" || fail "$name: did not resume from a checkpoint"
  compare exact "$work/$ref" "$work/$name"
  echo "ok: $name ($np rank(s), $fault${rank:+ on rank $rank}): resumed run is bit-identical"
}

# sigterm NP NAME REFERENCE: every rank stops itself before step 6's
# all-reduce; SIGTERM, then SIGCONT: exit 75 within seconds, a checkpoint of
# step 6, and resuming from it matches REFERENCE.
sigterm() {
  local np=$1 name=$2 ref=$3
  SPARC_FAULT=stop@step:6 run "$np" "$name" > "$work/$name.term.log" 2>&1 &
  local launcher=$! pids="" i
  for i in $(seq 1 600); do
    pids=$(pgrep -f "^$sparc .*run-dir $work/$name " || true)
    local stopped=0 p
    for p in $pids; do [[ $(ps -o stat= -p "$p") == T* ]] && stopped=$((stopped + 1)); done
    [ "$stopped" -eq "$np" ] && break
    sleep 0.1
  done
  [ "$stopped" -eq "$np" ] || fail "$name: the ranks never reached step 6"
  local start=$(date +%s.%N)
  for p in $pids; do kill -TERM "$p"; done
  for p in $pids; do kill -CONT "$p"; done
  wait $launcher
  local rc=$? took
  took=$($py -c "import time; print(f'{time.time() - $start:.2f}')")
  [ $rc -eq 75 ] || { tail -5 "$work/$name.term.log"; fail "$name: exit $rc after SIGTERM, expected 75"; }
  $py -c "import sys; sys.exit(0 if $took < 10 else 1)" || fail "$name: took $took s to stop"
  [ -f "$work/$name/checkpoints/ckpt-00000006.h5" ] || fail "$name: no checkpoint of step 6"
  SPARC_FAULT= run "$np" "$name" --resume auto > "$work/$name.resume.log" 2>&1 || fail "$name: resume failed"
  compare exact "$work/$ref" "$work/$name"
  echo "ok: $name: SIGTERM -> exit 75 after $took s, checkpoint of step 6, resumed run bit-identical"
}

if [ "$mode" = 1rank ]; then
  run 1 ref1 > "$work/ref1.log" 2>&1 || { tail -20 "$work/ref1.log"; fail "reference run failed"; }
  steps=$(grep -a -c '' "$work/ref1/metrics.jsonl")
  echo "reference: $(ls "$work/ref1/checkpoints" | tr '\n' ' ')"
  kill_and_resume 1 kill_step5 ref1 kill@step:5
  kill_and_resume 1 kill_step11 ref1 kill@step:11
  # The 5th write is task 0's end (steps 2, 4, 6, 8, 8-end): resume from the
  # checkpoint of its last step, whose epoch end (early stopping) is still to come.
  kill_and_resume 1 kill_write5 ref1 kill@checkpoint-write:5
  sigterm 1 term1 ref1

  # Damaged newest checkpoint: named, skipped, the previous one used, same results.
  for damage in truncate flip; do
    d="$work/damaged_$damage"
    cp -r "$work/ref1" "$d"
    rm "$d/results.json" "$d/library.safetensors"
    newest="$d/checkpoints/$(cat "$d/checkpoints/latest")"
    size=$(stat -c %s "$newest")
    if [ $damage = truncate ]; then
      truncate -s $((size / 2)) "$newest"
    else
      $py - "$newest" <<'PY'
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
b[len(b) // 2] ^= 0x01
open(p, "wb").write(bytes(b))
PY
    fi
    run 1 "damaged_$damage" --resume auto > "$d.log" 2>&1 || { tail -5 "$d.log"; fail "$damage: resume crashed"; }
    grep -a "checkpoint skipped" "$d.log" | grep -a -q "$(basename "$newest").*checksum mismatch" ||
      fail "$damage: the damaged file is not named"
    compare exact "$work/ref1" "$d"
    echo "ok: $damage newest checkpoint: named, skipped, previous one resumed, identical results"
  done

  # A config that changes the completed part is refused, naming the key.
  run 1 ref1 --resume auto --set train.lr=0.5 > "$work/refuse.log" 2>&1
  rc=$?
  [ $rc -eq 2 ] || fail "changed train.lr: exit $rc, expected 2"
  grep -a -q "train.lr" "$work/refuse.log" || fail "changed train.lr: key not named"
  run 1 ref1 --resume auto --set tasks.0.test="$root/configs/data/tiny-ti/mood/test.jsonl" > "$work/refuse2.log" 2>&1
  [ $? -eq 2 ] && grep -a -q "tasks\[0\].*already done" "$work/refuse2.log" ||
    fail "changed task 0 not refused as done"
  # Another base model (here: one byte longer, so its fingerprint differs) is refused.
  cp "$model" "$work/other.bin" && printf 'x' >> "$work/other.bin"
  run 1 ref1 --resume auto --set model.path="$work/other.bin" > "$work/refuse3.log" 2>&1
  [ $? -eq 2 ] && grep -a -q "the base model differs" "$work/refuse3.log" ||
    fail "another base model not refused"
  echo "ok: changed config refused: $(grep -a -m1 'train.lr' "$work/refuse.log" | head -c 160)"

  # The HDF5 C API reads the layout by names alone.
  newest="$work/ref1/checkpoints/$(cat "$work/ref1/checkpoints/latest")"
  "$reader" "$newest" > "$work/reader.out" || { cat "$work/reader.out"; fail "HDF5 C reader"; }
  grep -q "^format sparc-checkpoint$" "$work/reader.out" || fail "format attribute"
  grep -q "^library/nature/Z 8 16$" "$work/reader.out" || fail "library/nature/Z is not [P=8, k=16]"
  grep -q "^library/nature/W 16 64$" "$work/reader.out" || fail "library/nature/W is not [k=16, D=64]"
  grep -q "^results/accuracy 3 3$" "$work/reader.out" || fail "results/accuracy is not 3 x 3"
  grep -q "^metrics/history $steps$" "$work/reader.out" || fail "metrics/history has not $steps lines"
  echo "ok: HDF5 C API reads $(grep -c '' "$work/reader.out") fields by name"

  # inspect and export-peft on a real checkpoint.
  "$sparc" inspect "$newest" --json > "$work/inspect.json" || fail "inspect"
  $py -c "import json,sys; j=json.load(open('$work/inspect.json')); assert j['cursor']['task']==3 and len(j['accuracy_matrix'])==3, j" ||
    fail "inspect --json content"
  "$sparc" export-peft --checkpoint "$work/ref1/checkpoints" --task mood --out "$work/peft" > /dev/null ||
    fail "export-peft"
  for f in prompt/adapter_config.json prompt/adapter_model.safetensors lora/adapter_config.json lora/adapter_model.safetensors; do
    [ -f "$work/peft/$f" ] || fail "export-peft: no $f"
  done
  echo "ok: inspect and export-peft"
elif [ "$mode" = methods ]; then
  for combo in prompt:task lora:task full:task sparc:domain sparc+lora:domain; do
    method=${combo%%:*}
    cfg="$root/configs/tiny-${combo##*:}-incremental.yaml"
    sets=(--set method=$method --set train.epochs=2 --set train.max_train_examples=48
          --set eval.max_examples=40 --set checkpoint.every_steps=3 --set train.lr=0.01)
    name=${method/+/_}_${combo##*:}
    run 1 "$name" > "$work/$name.log" 2>&1 || { tail -5 "$work/$name.log"; fail "$name reference run failed"; }
    kill_and_resume 1 "${name}_killed" "$name" kill@step:8
  done
else
  run 2 ref2 > "$work/ref2.log" 2>&1 || { tail -20 "$work/ref2.log"; fail "2-rank reference run failed"; }
  kill_and_resume 2 kill2_step7 ref2 kill@step:7 1
  kill_and_resume 2 kill2_write4 ref2 kill@checkpoint-write:4 0
  sigterm 2 term2 ref2

  # Another world size: the same bits (SPEC 3, train.deterministic), on the
  # config's own step sizes.
  run 1 ref1 > "$work/ref1.log" 2>&1 || fail "1-rank reference run failed"
  compare exact "$work/ref1" "$work/ref2"
  echo "ok: 2 ranks = 1 rank"

  # 2 -> 3: a 2-rank run SIGKILLed mid-task, resumed on 3 ranks.
  SPARC_FAULT=kill@step:11 SPARC_FAULT_RANK=1 run 2 cross23 > "$work/cross23.kill.log" 2>&1
  SPARC_FAULT= SPARC_FAULT_RANK= run 3 cross23 --resume auto > "$work/cross23.log" 2>&1 || fail "2->3 resume failed"
  grep -a -q "resuming from" "$work/cross23.log" || fail "2->3 did not resume"
  compare exact "$work/ref1" "$work/cross23"
  echo "ok: 2-rank checkpoint resumed on 3 ranks = uninterrupted 1-rank run"

  # 1 -> 2.
  SPARC_FAULT=kill@step:13 SPARC_FAULT_RANK= run 1 cross12 > "$work/cross12.kill.log" 2>&1
  SPARC_FAULT= run 2 cross12 --resume auto > "$work/cross12.log" 2>&1 || fail "1->2 resume failed"
  grep -a -q "resuming from" "$work/cross12.log" || fail "1->2 did not resume"
  compare exact "$work/ref1" "$work/cross12"
  echo "ok: 1-rank checkpoint resumed on 2 ranks = uninterrupted 1-rank run"
fi
echo PASS
