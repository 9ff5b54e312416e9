# Shared by the cluster test scripts (CTest label `cluster`). Sourced after
# `sparc` (the binary) and `root` (the project root) are set. Skips (exit 77,
# CTest's SKIP_RETURN_CODE) without root; without the shared model too, but
# under CI=true that is a failure (tests/skip_lib.sh); a missing Debian
# package is a failure (scripts/setup.sh installs them).
. "$(dirname "${BASH_SOURCE[0]}")/../skip_lib.sh"
model="$root/../shared/models/aidreams260K/model.bin"
require_shared "$model"
if [ "$(id -u)" -ne 0 ]; then skip_test "needs root (network namespaces, slurmd)"; fi
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
fail() { echo "FAIL: $*"; exit 1; }
# The tiny three-task run, shortened to ~40 steps per task (~25 s on 2 ranks
# here): two tasks with reuse between them and one orthogonal, evaluated.
job_args=(--config "$root/configs/tiny-task-incremental.yaml"
          --set train.epochs=2 --set train.max_train_examples=320
          --set eval.max_examples=200 --set train.log_every=5)
has_resume() { "$sparc" train --help 2>/dev/null | grep -q -- '--resume'; }
compare_runs() { /usr/bin/python3 "$here/compare_runs.py" "$@"; }
# wait_for_step RUN_DIR TASK STEP SECONDS [PID]: until RUN_DIR/metrics.jsonl
# shows TASK at STEP or later (mid-run); fails early when PID has ended.
wait_for_step() {
  local deadline=$(( $(date +%s) + $4 ))
  while [ "$(date +%s)" -lt "$deadline" ]; do
    [ -z "${5:-}" ] || kill -0 "$5" 2>/dev/null || return 1
    if [ -f "$1/metrics.jsonl" ] && /usr/bin/python3 - "$1/metrics.jsonl" "$2" "$3" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip().endswith("}")]
sys.exit(0 if any(r.get("task") == sys.argv[2] and r.get("step", 0) >= int(sys.argv[3]) for r in rows) else 1)
PY
    then return 0; fi
    sleep 0.3
  done
  return 1
}
