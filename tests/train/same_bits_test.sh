#!/usr/bin/env bash
# Same bits at any world size (SPEC 3, issue 19) on the shipped tiny
# task-incremental config with fewer examples (bit equality needs no whole
# runs), one thread per rank: sparc+lora on 3 ranks and on 2 ranks sharded,
# a run with the orthogonality penalty on 2 ranks, and PCA on hidden states
# (features kept or computed twice) on 2 sharded ranks, each byte-identical
# to the 1-rank run (once on 2 threads) (library.safetensors; results.json apart from timing);
# the first with the vocabulary in several slices.
# The SIGKILL-and-resume-elsewhere case is in tests/ckpt/resume_test.sh 2ranks.
# Usage: same_bits_test.sh SPARC_BINARY PROJECT_ROOT
set -u
export SPARC_BIN=$1
root=$2
. "$root/tests/comm/mpi_test_lib.sh"
few=(--set train.epochs=1 --set train.max_train_examples=48 --set eval.max_examples=40)
cfg=$root/configs/tiny-task-incremental.yaml
# Vocabulary slices of 100 rows (SPARC_VOCAB_SLICE_ROWS, on every run
# compared): the 512-token vocabulary spans 6 slices, so the sharded
# lookups, class scores and the perplexity's log-softmax folded slice by
# slice are compared with the 1-rank run too.
SPARC_VOCAB_SLICE_ROWS=100 \
"$root/scripts/same_bits.sh" --configs "$cfg" --methods sparc+lora --ranks 3 -- "${few[@]}" ||
  fail "sparc+lora: 3 ranks or 2 sharded ranks differ from 1 rank"
# The 1-rank base on 2 threads: the thread count changes no bit either (the
# eigensolver runs on one thread; BLAS splits products by rows and columns).
"$root/scripts/same_bits.sh" --configs "$cfg" --methods sparc --ranks 2 --base-threads 2 -- "${few[@]}" \
  --set train.lambda_orth=0.5 || fail "sparc with lambda_orth: 2 ranks of 1 thread differ from 1 rank of 2"
# PCA on hidden states, sharded: the features kept between PCA's two passes
# and the features computed again (SPARC_PCA_CACHE_BYTES=0) give the same bits.
dcfg=$root/configs/tiny-domain-incremental.yaml
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
hidden=("${few[@]}" --set pca.source=hidden:2)
"$root/scripts/same_bits.sh" --configs "$dcfg" --methods sparc --ranks 2 --out "$tmp/kept" \
  -- "${hidden[@]}" || fail "PCA on hidden states: 2 ranks differ from 1 rank"
SPARC_PCA_CACHE_BYTES=0 "$root/scripts/same_bits.sh" --configs "$dcfg" --methods sparc --ranks 2 \
  --out "$tmp/again" -- "${hidden[@]}" || fail "PCA features computed twice: 2 ranks differ from 1 rank"
cmp "$tmp/kept/tiny-domain-incremental.sparc.1/library.safetensors" \
  "$tmp/again/tiny-domain-incremental.sparc.1/library.safetensors" ||
  fail "PCA features kept and computed again differ"
echo PASS
