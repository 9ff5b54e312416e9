#!/usr/bin/env bash
# Issue 18: a sparc whose LibTorch has no CUDA, asked under mpirun -np 2 for
# comm.backend=nccl or model.device=cuda (sparc train, sparc pretrain), stops both
# ranks with exit 2 within 10 s, each printing the one message that names
# what is missing and how to build against a CUDA LibTorch; no MPI abort.
# Usage: gpu_refusal_test.sh SPARC_BINARY PROJECT_ROOT
set -u
sparc=$1
root=$2
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
fail() { echo "FAIL: $*"; exit 1; }
if ldd "$sparc" | grep -q libc10_cuda; then echo "skipped: this sparc links a CUDA LibTorch"; exit 77; fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$sparc" --log-level warn random-model --out "$work/model" --dim 32 --layers 1 --heads 2 --ffn 64 \
  --vocab 300 || fail "random-model"

# expect_exit2 NAME PATTERN COMMAND...: both ranks exit 2 within 10 s, each printing PATTERN once.
expect_exit2() {
  local name=$1 pattern=$2
  shift 2
  local log="$work/log-$name" start rc took
  start=$(date +%s%N)
  timeout 60 mpirun -np 2 --oversubscribe "$sparc" "$@" > "$log" 2>&1
  rc=$?
  took=$(( ($(date +%s%N) - start) / 1000000 ))
  cat "$log"
  echo "$name: exit $rc after $took ms"
  [ $rc -eq 2 ] || fail "$name: exit $rc, expected 2"
  [ $took -le 10000 ] || fail "$name: took $took ms, more than 10 s"
  [ "$(grep -a -o "$pattern" "$log" | wc -l)" -eq 2 ] || fail "$name: both ranks must print '$pattern' once"
  grep -q "cmake_prefix_path" "$log" || fail "$name: the message does not say how to build against a CUDA LibTorch"
  ! grep -q "MPI_ABORT" "$log" || fail "$name: the job was aborted instead of agreeing"
}

train=(train --config "$root/configs/tiny-task-incremental.yaml" --run-dir "$work/run"
       --set model.path="$work/model" --set model.tokenizer=bytes)
expect_exit2 train-nccl 'comm.backend: needs CUDA, but this sparc links LibTorch' \
  "${train[@]}" --set comm.backend=nccl
expect_exit2 train-cuda 'model.device: needs CUDA, but this sparc links LibTorch' \
  "${train[@]}" --set model.device=cuda
# pretrain: the same check and agreement, before its first other collective.
printf 'the cat sat on the mat.\n%.0s' $(seq 50) > "$work/corpus.txt"
cat > "$work/pretrain.yaml" <<YAML
out: $work/pretrained
model: {dim: 32, layers: 1, heads: 2, ffn: 64, max_seq_len: 64}
data: {text: $work/corpus.txt}
train: {steps: 2, batch_size: 2, seq_len: 16}
YAML
expect_exit2 pretrain-nccl 'comm.backend: needs CUDA, but this sparc links LibTorch' \
  pretrain --config "$work/pretrain.yaml" --set comm.backend=nccl
expect_exit2 pretrain-cuda 'model.device: needs CUDA, but this sparc links LibTorch' \
  pretrain --config "$work/pretrain.yaml" --set model.device=cuda
[ ! -e "$work/pretrained" ] || fail "a refused pretraining wrote its model directory"
echo "PASS (nccl and cuda refused on both ranks with exit 2, train and pretrain)"
