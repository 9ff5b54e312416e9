#!/usr/bin/env bash
# Storage faults while writing checkpoints (docs/reliability.md), end to end
# on the tiny config (a checkpoint every 2 steps). The process stops itself
# before step 5's all-reduce (SPARC_FAULT=stop@step:5, after the checkpoints
# of steps 2 and 4), the test breaks the checkpoint directory, then lets it
# go on: the write of step 6 fails. No timing races.
#   1rank:  a full disk (a small tmpfs, filled up) with checkpoint.on_write_error
#           stop: exit 74 naming the file and "No space left on device", the
#           directory byte-identical to before (no .tmp left, `latest` and both
#           checkpoints unchanged and verifying with `sparc inspect`), the disk
#           no fuller; after making room, --resume auto from step 4 gives
#           results bit-identical to an uninterrupted run.
#           The same with on_write_error continue: a warning per failed write,
#           the run finishes with exit 0 and the uninterrupted run's results.
#           SIGTERM with the disk full: exit 74, not 75 (no checkpoint of
#           that step), even under continue. The run directory on the full disk too: metrics.jsonl cannot be
#           written, exit 74 naming it. A read-only bind mount: exit 74
#           "Read-only file system", directory unchanged. The directory
#           replaced by a regular file: exit 74.
#   2ranks: the full disk under mpirun -np 2: both ranks exit 74 together
#           (no hang), and the 2-rank run resumes.
# Mounts run in a private mount namespace (unshare -m) that ends with the
# test; without mount permission the test skips (77) saying so.
# Usage: storage_fault_test.sh SPARC_BINARY PROJECT_ROOT 1rank|2ranks
set -u
sparc=$1
root=$2
mode=$3
. "$root/tests/comm/mpi_test_lib.sh"
py=/usr/bin/python3
require_python numpy

# A private mount namespace: every mount below disappears with this process.
if [ -z "${SPARC_STORAGE_TEST_NS:-}" ]; then
  if unshare -m --propagation private true 2>/dev/null; then
    SPARC_STORAGE_TEST_NS=1 exec unshare -m --propagation private "$0" "$@"
  fi
  skip_test "cannot create a mount namespace (unshare -m): mounts not permitted here"
fi

work=$(mktemp -d)
cleanup() {
  for pid in $(pgrep -f "run-dir $work/" || true); do kill -CONT "$pid" 2>/dev/null; kill -KILL "$pid" 2>/dev/null; done
  for m in $(awk -v w="$work" 'index($2, w) == 1 {print $2}' /proc/mounts | sort -r); do umount -l "$m"; done
  [ -n "${SPARC_KEEP_WORK:-}" ] && echo "kept $work" || rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/disk"
# 24 MiB: preflight wants 16 MiB free for a checkpoint of a small method.
if ! mount -t tmpfs -o size=24m sparc-test "$work/disk" 2>"$work/mount.err"; then
  skip_test "cannot mount a tmpfs: $(cat "$work/mount.err")"
fi

cfg="$root/configs/tiny-task-incremental.yaml"
sets=(--set method=sparc+lora --set train.epochs=2 --set train.max_train_examples=64
      --set eval.max_examples=60 --set checkpoint.every_steps=2 --set checkpoint.keep=3
      --set comm.timeout_s=60)
compare() { $py "$root/tests/ckpt/compare_runs.py" "$@" || fail "$2 vs $3 ($1)"; }

# run NP NAME [extra args]: a training run; SPARC_FAULT comes from the environment.
run() {
  local np=$1 name=$2
  shift 2
  export SPARC_FAULT=${SPARC_FAULT:-} SPARC_FAULT_RANK=
  if [ "$np" = 1 ]; then
    timeout 300 "$sparc" --log-level info train --config "$cfg" --run-dir "$work/$name" "${sets[@]}" "$@"
  else
    timeout 300 mpirun -np "$np" --oversubscribe -x SPARC_FAULT -x SPARC_FAULT_RANK \
      "$sparc" --log-level info train --config "$cfg" --run-dir "$work/$name" "${sets[@]}" "$@"
  fi
}

# snapshot DIR: names, sizes and SHA-256 of every file, and what `latest` says.
snapshot() { (cd "$1" && for f in $(ls -A | sort); do echo "$f $(sha256sum < "$f" | cut -c1-64)"; done; echo "latest=$(cat latest)"); }

# broken NP NAME CKPT_DIR EXPECT_RC BREAK [extra args]: runs until every rank
# stopped itself at step 5, snapshots CKPT_DIR, runs the shell command BREAK,
# lets the ranks go on; the run must exit EXPECT_RC within the time limit and
# leave CKPT_DIR as it was.
# wait_stopped NP NAME LAUNCHER: until all NP ranks of NAME stopped themselves (sets $pids).
wait_stopped() {
  local np=$1 name=$2 launcher=$3 i p
  stopped=0
  for i in $(seq 1 900); do
    pids=$(pgrep -f "^$sparc .*run-dir $work/$name " || true)
    stopped=0
    for p in $pids; do [[ $(ps -o stat= -p "$p") == T* ]] && stopped=$((stopped + 1)); done
    [ "$stopped" -eq "$np" ] && return 0
    kill -0 "$launcher" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

# With AFTER set (a shell command), the ranks also stop themselves at step 7,
# after the failed write of step 6, and AFTER runs then, with $pids set.
broken() {
  local np=$1 name=$2 dir=$3 expect=$4 break_it=$5
  shift 5
  local fault=stop@step:5
  [ -n "${AFTER:-}" ] && fault=stop@step:5-7
  SPARC_FAULT=$fault run "$np" "$name" --set checkpoint.dir="$dir" "$@" > "$work/$name.log" 2>&1 &
  local launcher=$! p
  wait_stopped "$np" "$name" $launcher || { tail -5 "$work/$name.log"; fail "$name: the ranks never reached step 5"; }
  [ -f "$dir/ckpt-00000004.h5" ] && [ "$(cat "$dir/latest")" = ckpt-00000004.h5 ] ||
    fail "$name: no checkpoint of step 4 before the fault"
  snapshot "$dir" > "$work/$name.before"
  eval "$break_it" || fail "$name: could not break the directory ($break_it)"
  used_before=$(df --output=used -B1 "$work/disk" | tail -1)
  for p in $pids; do kill -CONT "$p"; done
  if [ -n "${AFTER:-}" ]; then
    wait_stopped "$np" "$name" $launcher || fail "$name: the ranks never reached step 6"
    for p in $pids; do kill -CONT "$p"; done
    wait_stopped "$np" "$name" $launcher || { tail -5 "$work/$name.log"; fail "$name: the ranks never reached step 7"; }
    eval "$AFTER"
    for p in $pids; do kill -CONT "$p"; done
  fi
  wait $launcher
  rc=$?
  [ $rc -eq "$expect" ] || { tail -8 "$work/$name.log"; fail "$name: exit $rc, expected $expect"; }
  ! grep -a -q -E "frame #|Segmentation|Aborted|internal error" "$work/$name.log" ||
    fail "$name: crashed: $(grep -a -m1 -E 'frame #|Segmentation|Aborted|internal error' "$work/$name.log")"
}

# intact NAME DIR: the directory is byte-for-byte what it was before the
# fault, and its newest checkpoint verifies and reads.
intact() {
  local name=$1 dir=$2
  snapshot "$dir" > "$work/$name.after"
  diff "$work/$name.before" "$work/$name.after" > /dev/null ||
    { diff "$work/$name.before" "$work/$name.after"; fail "$name: the checkpoint directory changed"; }
  "$sparc" inspect "$dir" > "$work/$name.inspect" 2>&1 || { cat "$work/$name.inspect"; fail "$name: inspect"; }
  grep -a -q "ckpt-00000004.h5 (format .*checksum ok)" "$work/$name.inspect" ||
    fail "$name: the newest valid checkpoint is not step 4: $(head -1 "$work/$name.inspect")"
}

# check_released NAME: the running ranks ($pids) hold no deleted file open,
# and the disk is no fuller than before the failed write.
check_released() {
  local p now
  now=$(df --output=used -B1 "$work/disk" | tail -1)
  [ "$now" -le "$used_before" ] || fail "$1: the disk is fuller after the failed write: $used_before -> $now bytes"
  for p in $pids; do
    ! ls -l "/proc/$p/fd" 2>/dev/null | grep -q "$work/disk.*(deleted)" ||
      fail "$1: rank process $p holds a deleted file open: $(ls -l "/proc/$p/fd" | grep deleted)"
  done
  echo "ok: $1: after the failed write the process holds no deleted file, the disk is as before ($now bytes used)"
}

fill_disk() { dd if=/dev/zero of="$work/disk/filler" bs=64k status=none 2>/dev/null; true; }

if [ "$mode" = 1rank ]; then
  run 1 ref > "$work/ref.log" 2>&1 || { tail -20 "$work/ref.log"; fail "reference run failed"; }
  echo "reference: $(ls "$work/ref/checkpoints" | tr '\n' ' ')"

  # ---- disk full, on_write_error: stop (the default) ----
  d="$work/disk/stop"
  broken 1 full_stop "$d" 74 fill_disk
  used_after=$(df --output=used -B1 "$work/disk" | tail -1)
  intact full_stop "$d"
  msg=$(grep -a "sparc: error:" "$work/full_stop.log")
  for needle in "$d/ckpt-00000006.h5.tmp" "No space left on device" \
                "checkpoint.on_write_error: stop" "latest still names ckpt-00000004.h5" "--resume auto"; do
    [[ $msg == *"$needle"* ]] || fail "full_stop: '$needle' not in the error: $msg"
  done
  [ "$used_after" -le "$used_before" ] || fail "full_stop: the disk is fuller: $used_before -> $used_after bytes"
  [ ! -f "$work/full_stop/results.json" ] || fail "full_stop: results.json written after the stop"
  echo "ok: disk full, stop: exit 74, ${msg:0:200}..."
  rm -f "$work/disk/filler"
  run 1 full_stop --set checkpoint.dir="$d" --resume auto > "$work/full_stop.resume.log" 2>&1 ||
    { tail -5 "$work/full_stop.resume.log"; fail "full_stop: resume failed"; }
  grep -a -q "resuming from $d/ckpt-00000004.h5" "$work/full_stop.resume.log" ||
    fail "full_stop: did not resume from step 4"
  compare exact "$work/ref" "$work/full_stop"
  echo "ok: disk full, stop: resumed from step 4 after making room, bit-identical to the uninterrupted run"

  # ---- SIGTERM whose checkpoint cannot be written: 74, not 75 ----
  d="$work/disk/term"
  broken 1 term_full "$d" 74 'fill_disk && kill -TERM $pids' --set checkpoint.on_write_error=continue
  intact term_full "$d"
  grep -a "sparc: error:" "$work/term_full.log" | grep -a -q "a stop was requested (SIGTERM/SIGINT) but its checkpoint could not be written: .*ckpt-00000005.h5.tmp: write: No space left on device" ||
    fail "term_full: $(grep -a 'sparc: error' "$work/term_full.log")"
  echo "ok: SIGTERM on a full disk: exit 74 (not 75), even under continue: $(grep -a 'sparc: error' "$work/term_full.log" | head -c 160)..."
  rm -f "$work/disk/filler"

  # ---- disk full, on_write_error: continue ----
  # 100 KiB left free: the write of step 6 gets that far into its .tmp
  # before the disk is full. At step 7 (the process still running) the
  # space is free again and no deleted file is held open.
  d="$work/disk/continue"
  AFTER='check_released full_continue' broken 1 full_continue "$d" 0 \
    'fill_disk && truncate -s -100K "$work/disk/filler"' --set checkpoint.on_write_error=continue
  intact full_continue "$d"
  # Every write after step 4 is refused: all the reference run made but two.
  expected=$(( $(grep -a -c "checkpoint $work/ref/checkpoints/ckpt-" "$work/ref.log") - 2 ))
  warnings=$(grep -a -c "checkpoint write failed (.* in this run so far), training continues" "$work/full_continue.log")
  [ "$warnings" -eq "$expected" ] && [ "$expected" -gt 0 ] ||
    fail "full_continue: $warnings warnings, expected one per failed write ($expected)"
  grep -a "checkpoint write failed" "$work/full_continue.log" | grep -a -q "No space left on device" ||
    fail "full_continue: the warning does not give the reason"
  compare exact "$work/ref" "$work/full_continue"
  echo "ok: disk full, continue: $warnings warnings (one per write), exit 0, results identical to the uninterrupted run"
  rm -f "$work/disk/filler"

  # ---- the run directory itself on the full disk (checkpoints continue) ----
  # metrics.jsonl, written by rank 0 alone at the next logged step: exit 74
  # naming it (was: the failed stream write went unnoticed).
  d="$work/disk/rundir/checkpoints"
  mkdir -p "$work/disk/rundir"
  ln -s "$work/disk/rundir" "$work/on_disk"
  broken 1 on_disk "$d" 74 fill_disk --set checkpoint.on_write_error=continue
  grep -a "sparc: error:" "$work/on_disk.log" | grep -a -q "on_disk/metrics.jsonl: write: No space left on device" ||
    fail "on_disk: $(grep -a 'sparc: error' "$work/on_disk.log")"
  echo "ok: run directory on a full disk: exit 74: $(grep -a 'sparc: error' "$work/on_disk.log" | head -c 200)"
  rm -f "$work/disk/filler"

  # ---- read-only mount ----
  d="$work/ro"
  broken 1 read_only "$d" 74 'mount --bind "$d" "$d" && mount -o remount,bind,ro "$d"'
  intact read_only "$d"
  grep -a "sparc: error:" "$work/read_only.log" | grep -a -q "ckpt-00000006.h5.tmp.*Read-only file system" ||
    fail "read_only: error does not name the file and the reason: $(grep -a 'sparc: error' "$work/read_only.log")"
  umount "$d"
  run 1 read_only --set checkpoint.dir="$d" --resume auto > "$work/read_only.resume.log" 2>&1 ||
    fail "read_only: resume failed"
  compare exact "$work/ref" "$work/read_only"
  echo "ok: read-only mount: exit 74, directory unchanged, resumed bit-identical: $(grep -a 'sparc: error' "$work/read_only.log" | head -c 300)"

  # ---- the directory replaced by a regular file ----
  d="$work/gone"
  broken 1 turned_file "$d" 74 'mv "$d" "$d.moved" && echo x > "$d"'
  grep -a "sparc: error:" "$work/turned_file.log" | grep -a -q "$d: exists and is not a directory" ||
    fail "turned_file: error does not say why: $(grep -a 'sparc: error' "$work/turned_file.log")"
  rm "$d" && mv "$d.moved" "$d"
  intact turned_file "$d"
  echo "ok: checkpoint directory turned into a file: exit 74: $(grep -a 'sparc: error' "$work/turned_file.log" | head -c 300)"
else
  # ---- disk full on 2 ranks: both stop together ----
  run 2 ref2 > "$work/ref2.log" 2>&1 || { tail -20 "$work/ref2.log"; fail "2-rank reference run failed"; }
  d="$work/disk/stop2"
  start=$(date +%s)
  broken 2 full_stop2 "$d" 74 fill_disk
  took=$(( $(date +%s) - start ))
  intact full_stop2 "$d"
  errors=$(grep -a -c "sparc: error: .*No space left on device" "$work/full_stop2.log")
  [ "$errors" -eq 2 ] || fail "full_stop2: $errors ranks reported the error, expected 2"
  ! grep -a -q "MPI_ABORT\|watchdog" "$work/full_stop2.log" || fail "full_stop2: aborted instead of agreeing"
  echo "ok: disk full on 2 ranks: both exit 74 with the error (whole run ${took} s, no abort, no hang)"
  rm -f "$work/disk/filler"
  run 2 full_stop2 --set checkpoint.dir="$d" --resume auto > "$work/full_stop2.resume.log" 2>&1 ||
    { tail -5 "$work/full_stop2.resume.log"; fail "full_stop2: resume failed"; }
  compare exact "$work/ref2" "$work/full_stop2"
  echo "ok: 2 ranks resumed from step 4, bit-identical to the uninterrupted 2-rank run"

  # continue on 2 ranks: both go on together to the end.
  d="$work/disk/continue2"
  broken 2 full_continue2 "$d" 0 fill_disk --set checkpoint.on_write_error=continue
  intact full_continue2 "$d"
  compare exact "$work/ref2" "$work/full_continue2"
  echo "ok: disk full on 2 ranks, continue: both ranks finish, results identical"
fi
echo PASS
