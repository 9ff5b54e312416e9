#!/usr/bin/env bash
# Same bits at any world size (SPEC 3, issue 19) on the shipped tiny
# task-incremental config with fewer examples (bit equality needs no whole
# runs), one thread per rank: sparc+lora on 3 ranks and on 2 ranks sharded,
# and a run with the orthogonality penalty on 2 ranks, each byte-identical
# to the 1-rank run (library.safetensors; results.json apart from timing).
# The SIGKILL-and-resume-elsewhere case is in tests/ckpt/resume_test.sh 2ranks.
# Usage: same_bits_test.sh SPARC_BINARY PROJECT_ROOT
set -u
export SPARC_BIN=$1
root=$2
. "$root/tests/comm/mpi_test_lib.sh"
few=(--set train.epochs=1 --set train.max_train_examples=48 --set eval.max_examples=40)
cfg=$root/configs/tiny-task-incremental.yaml
"$root/scripts/same_bits.sh" --configs "$cfg" --methods sparc+lora --ranks 3 -- "${few[@]}" ||
  fail "sparc+lora: 3 ranks or 2 sharded ranks differ from 1 rank"
"$root/scripts/same_bits.sh" --configs "$cfg" --methods sparc --ranks 2 -- "${few[@]}" \
  --set train.lambda_orth=0.5 || fail "sparc with lambda_orth: 2 ranks differ from 1 rank"
echo PASS
