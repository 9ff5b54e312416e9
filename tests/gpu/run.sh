#!/usr/bin/env bash
# GPU checks of sparc (issue 18), for the GPU machine of ../shared/GPU.md
# (one H200, a CUDA LibTorch from pip's torch, transformers and peft, no
# registry, 64 MiB carried). Written without a GPU: not yet run there.
#
#   tests/gpu/run.sh [STEP]...          on the GPU machine (default: every step)
#   tests/gpu/run.sh --rehearse [STEP]... the same flow here on build/ with
#                                        cpu + mpi; skips only what needs a GPU
#   tests/gpu/run.sh --fetch-debs       on the build machine: the Debian packages
#                                        to carry, into build-gpudeps/debs
#
# Steps, in order (each runs alone on what earlier ones left in build-gpu/):
#   deps        unpack the carried packages (rehearsal: fetch them, check
#               the carry stays under 64 MiB, unpack, check what configure needs)
#   configure   cmake with the CUDA LibTorch and NCCL (rehearsal: the same
#               command against the unpacked packages, configure only)
#   build       sparc, the conformance suite, adapter_logits (rehearsal: uses build/)
#   logits      transformer logits on the device vs the CPU: f32 (1e-4 of
#               the scale) and bf16 (no further from f32 than the CPU's bf16)
#   comm        communicator conformance on the backend, world size 1
#   allreduce   sparc bench allreduce on the backend (and on mpi)
#   train       sparc train, tiny task-incremental config on a random llama,
#               on the device + backend vs the same run on cpu + mpi
#   resume      a cpu run killed after its first task, resumed on the device;
#               equals the uninterrupted cpu run within the train tolerances
#   bench_step  sparc bench gemm (peak) and bench step in bf16 on a random
#               llama of about 1B parameters, with MFU (rehearsal: f32, a
#               d512 model, 1 step)
#   peft        a sparc export-peft adapter loaded by peft + transformers into
#               the same random model; logits equal sparc's
# Logs, JSON lines and $OUT/status ("STEP RC" or "STEP skipped: why") go to
# $OUT (default build-gpu/out; build/gpu-rehearsal in a rehearsal).
# Exit status 0 when no step failed.
#
# NEEDS on the GPU machine: CUDA 13, cmake >= 3.22, ninja, g++, a python3
# whose torch is a CUDA build (its LibTorch is used) with the pip package
# nvidia-nccl-cu13 (NCCL_HOME), transformers and peft; the apt libraries
# under one prefix: SPARC_DEPS_PREFIX=/some/root (holding usr/...), or the
# packages of --fetch-debs in build-gpudeps/debs, named in the run's carry
# (carry: ["build-gpudeps/debs"]; about 19 MB, unpacked there into
# build-gpudeps/root).
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
root=$PWD

debs=(
  # Open MPI (and what libopenmpi3 links)
  libopenmpi3 libopenmpi-dev openmpi-bin openmpi-common libpmix2 libhwloc15
  libevent-core-2.1-7 libevent-pthreads-2.1-7 libfabric1 libucx0 libibverbs1
  librdmacm1 libnl-3-200 libnl-route-3-200 libpsm-infinipath1 libpsm2-2
  # HDF5
  libhdf5-103-1 libhdf5-cpp-103-1 libhdf5-hl-100 libhdf5-hl-cpp-100 libhdf5-dev libsz2 libaec0
  # SHA-256 of checkpoints (libcrypto)
  libssl3 libssl-dev
  # The rest
  libyaml-cpp0.7 libyaml-cpp-dev libspdlog1.10 libspdlog-dev libfmt9 libfmt-dev libcli11-dev
  nlohmann-json3-dev libeigen3-dev libgtest-dev libpcre2-dev libpcre2-8-0
)
carry_limit=$((64 << 20))

# Downloads what build-gpudeps/debs lacks (a package already there is kept).
fetch_debs() {
  mkdir -p build-gpudeps/debs || return 1
  local missing=() d
  for d in "${debs[@]}"; do
    compgen -G "build-gpudeps/debs/${d}_*.deb" >/dev/null || missing+=("$d")
  done
  [ ${#missing[@]} -eq 0 ] || (cd build-gpudeps/debs && apt-get download "${missing[@]}") || return 1
  du -sh build-gpudeps/debs
}

if [ "${1:-}" = "--fetch-debs" ]; then
  fetch_debs
  exit
fi
if [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then
  sed -n '2,41p' "$0" | sed 's/^# \{0,1\}//'
  exit 0
fi
rehearse=0
if [ "${1:-}" = "--rehearse" ]; then
  rehearse=1
  shift
fi
all_steps=(deps configure build logits comm allreduce train resume bench_step peft)
steps=("$@")
[ ${#steps[@]} -gt 0 ] || steps=("${all_steps[@]}")
for s in "${steps[@]}"; do
  [[ " ${all_steps[*]} " == *" $s "* ]] || { echo "run.sh: unknown step '$s' (${all_steps[*]})" >&2; exit 2; }
done

if [ $rehearse -eq 1 ]; then
  bdir=${SPARC_BUILD_DIR:-$root/build}
  OUT=${OUT:-$bdir/gpu-rehearsal}
  dev=cpu backend=mpi
  python=/usr/bin/python3
else
  bdir=$root/build-gpu
  OUT=${OUT:-$bdir/out}
  dev=cuda backend=nccl
  python=python3
fi
work=$bdir/gpu-work
mkdir -p "$OUT" "$work"
: >"$OUT/status"
failed=0
step() {  # step NAME COMMAND...: runs it, logs to $OUT/NAME.log, records its status
  local name=$1
  shift
  echo "== $name"
  "$@" >"$OUT/$name.log" 2>&1
  local rc=$?
  echo "$name $rc" >>"$OUT/status"
  tail -n 25 "$OUT/$name.log"
  [ "$rc" -eq 0 ] || failed=1
  return "$rc"
}
skip() {  # skip NAME WHY: a part that cannot run here, said so
  echo "== $1: skipped: $2"
  echo "$1 skipped: $2" >>"$OUT/status"
}
want() { [[ " ${steps[*]} " == *" $1 "* ]]; }

# ---- The environment: the carried libraries and the CUDA LibTorch ----
if [ $rehearse -eq 1 ]; then
  deps_root=${SPARC_DEPS_PREFIX:-$work/deps-root}
else
  deps_root=${SPARC_DEPS_PREFIX:-$root/build-gpudeps/root}
fi
usr=$deps_root/usr
lib=$usr/lib/x86_64-linux-gnu
if [ $rehearse -eq 0 ]; then
  export OPAL_PREFIX=$usr  # Open MPI relocated: finds its plugins and help files here
  export PATH=$usr/bin:$PATH
  torch_prefix=$($python -c 'import torch; print(torch.utils.cmake_prefix_path)')
  nccl_home=${NCCL_HOME:-$($python -c 'import nvidia.nccl as n; print(list(n.__path__)[0])')}
  torch_lib=$($python -c 'import torch, os; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
  export LD_LIBRARY_PATH=$lib:$lib/openmpi/lib:$lib/hdf5/serial:$nccl_home/lib:$torch_lib:${LD_LIBRARY_PATH:-}
  nvidia-smi -L >"$OUT/gpu.txt" 2>&1
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >>"$OUT/gpu.txt" 2>&1
else
  torch_prefix=/usr/lib/x86_64-linux-gnu/cmake/Torch
  nccl_home=${NCCL_HOME:-/usr}
fi
export OMPI_MCA_ess_singleton_isolated=1  # one rank without mpirun: no orted needed
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
sparc=$bdir/sparc
alog=$bdir/tests/adapter_logits

# ---- deps ----
deps_check() {
  if [ $rehearse -eq 1 ]; then
    fetch_debs || return 1
    local n
    n=$(ls build-gpudeps/debs/*.deb | wc -l)
    [ "$n" -ge ${#debs[@]} ] || { echo "only $n of ${#debs[@]} packages fetched"; return 1; }
    # What travels: the working tree git would copy, plus the carried folder.
    local tree carried
    tree=$(git ls-files -z --cached --others --exclude-standard | du -cb --files0-from=- 2>/dev/null | tail -1 | cut -f1)
    carried=$(du -sb build-gpudeps/debs | cut -f1)
    echo "carry: tree $tree bytes + build-gpudeps/debs $carried bytes = $((tree + carried)) of $carry_limit"
    [ $((tree + carried)) -lt $carry_limit ] || { echo "over the 64 MiB carry limit"; return 1; }
  fi
  if [ -z "${SPARC_DEPS_PREFIX:-}" ]; then
    compgen -G "build-gpudeps/debs/*.deb" >/dev/null || { echo "no build-gpudeps/debs/*.deb (carry it, or set SPARC_DEPS_PREFIX)"; return 1; }
    mkdir -p "$deps_root"
    for d in build-gpudeps/debs/*.deb; do dpkg -x "$d" "$deps_root" || return 1; done
  fi
  # What configure and the runs take from the prefix.
  local f missing=0
  for f in "$usr/bin/mpicxx.openmpi" "$usr/bin/mpirun.openmpi" "$lib/hdf5/serial" \
           "$lib/cmake/yaml-cpp" "$lib/cmake/spdlog" "$lib/cmake/GTest" "$usr/share/cmake/CLI11" \
           "$usr/share/cmake/nlohmann_json" "$usr/share/eigen3/cmake" "$lib/libcrypto.so" \
           "$lib/libpcre2-8.so" "$lib/openmpi/lib/openmpi3"; do
    [ -e "$f" ] || { echo "missing from the prefix: $f"; missing=1; }
  done
  return $missing
}
want deps && step deps deps_check

# ---- configure / build ----
configure() {
  local dir=$bdir extra=()
  if [ $rehearse -eq 1 ]; then
    # The GPU machine's command against the unpacked packages, into a
    # throwaway folder: configure only, never built.
    dir=$work/configure-rehearsal
    rm -rf "$dir"
    extra=(-DSPARC_BUILD_TESTS=ON)
  fi
  # The pip NCCL ships libnccl.so.2 without the libnccl.so link: name it directly.
  local nccl_lib=$nccl_home/lib/libnccl.so.2
  [ -e "$nccl_lib" ] || nccl_lib=$(ls /usr/lib/x86_64-linux-gnu/libnccl.so* 2>/dev/null | head -1)
  OPAL_PREFIX=$usr cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_PREFIX_PATH="$torch_prefix;$usr;$lib/cmake;$usr/share" \
    -DMPI_CXX_COMPILER="$usr/bin/mpicxx.openmpi" -DMPIEXEC_EXECUTABLE="$usr/bin/mpirun.openmpi" \
    -DHDF5_ROOT="$lib/hdf5/serial" \
    -DNCCL_INCLUDE_DIR="$nccl_home/include" -DNCCL_LIBRARY="$nccl_lib" \
    -DSPARC_WITH_CUDA=ON -DSPARC_WITH_NCCL=ON -DSPARC_USE_CCACHE=OFF "${extra[@]}" || return 1
  grep -q "SPARC_WITH_NCCL:BOOL=ON" "$dir/CMakeCache.txt" || { echo "NCCL not enabled"; return 1; }
  if [ $rehearse -eq 1 ]; then
    # The relocated Open MPI's wrapper, not the system one, must be the compiler found.
    grep -q "MPI_CXX_COMPILER:FILEPATH=$usr/bin/mpicxx.openmpi" "$dir/CMakeCache.txt" \
      || { echo "MPI_CXX_COMPILER is not the carried mpicxx"; return 1; }
  fi
}
want configure && step configure configure
if want build; then
  if [ $rehearse -eq 1 ]; then
    skip build "rehearsal uses $bdir (no second build)"
    for t in "$sparc" "$bdir/tests/communicator_mpi_test" "$alog"; do
      [ -x "$t" ] || { echo "build: $t missing in $bdir"; echo "build 1" >>"$OUT/status"; failed=1; }
    done
  else
    step build cmake --build "$bdir" -j "$(nproc)" --target sparc communicator_mpi_test adapter_logits
  fi
fi

# ---- logits: the device against the CPU ----
ids=(1 70 80 90 100 110 120 130 140 150 160 170)
logits_check() {
  local m=$work/logits-model
  [ -d "$m" ] || "$sparc" random-model --out "$m" --dim 256 --layers 4 --heads 8 --kv-heads 4 \
    --ffn 688 --vocab 512 --seed 3 || return 1
  local d t
  for d in cpu "$dev"; do
    for t in f32 bf16; do
      "$alog" "$m" none "$d" "$t" "${ids[@]}" >"$OUT/logits_${d}_$t.json" || return 1
    done
  done
  $python tests/gpu/compare.py logits "$OUT/logits_cpu_f32.json" "$OUT/logits_${dev}_f32.json" 1e-4 &&
    $python tests/gpu/compare.py bf16 "$OUT/logits_cpu_f32.json" "$OUT/logits_cpu_bf16.json" \
      "$OUT/logits_${dev}_bf16.json"
}
if want logits; then
  [ $rehearse -eq 1 ] && skip logits_cuda "no GPU: the 'device' side is the CPU again"
  step logits logits_check
fi

# ---- comm: conformance on the backend, one rank ----
if want comm; then
  step comm_$backend env SPARC_TEST_BACKEND=$backend "$bdir/tests/communicator_mpi_test"
  [ $rehearse -eq 1 ] && skip comm_nccl "no GPU: the conformance suite ran on mpi instead"
fi

# ---- allreduce ----
if want allreduce; then
  step allreduce_$backend sh -c "'$sparc' bench allreduce --backend $backend --iters 5 --json \
    >'$OUT/allreduce_$backend.jsonl'"
  if [ $rehearse -eq 0 ]; then
    step allreduce_mpi sh -c "'$sparc' bench allreduce --backend mpi --iters 5 --json \
      >'$OUT/allreduce_mpi.jsonl'"
  else
    skip allreduce_nccl "no GPU: bench allreduce ran on mpi"
  fi
fi

# ---- train / resume: the device against the CPU ----
tiny_model=$work/tiny-model
tiny_args=(--config configs/tiny-task-incremental.yaml --set model.path="$tiny_model"
           --set model.tokenizer=bytes --set train.epochs=1 --set train.max_train_examples=64
           --set eval.max_examples=50)
tiny_model() {
  [ -d "$tiny_model" ] || "$sparc" random-model --out "$tiny_model" --dim 64 --layers 2 --heads 4 \
    --ffn 128 --vocab 512 --seed 1
}
cpu_reference() {  # the uninterrupted cpu + mpi run both comparisons use
  tiny_model || return 1
  [ -f "$work/train_cpu/results.json" ] && return 0
  rm -rf "$work/train_cpu"
  "$sparc" --log-level warn train "${tiny_args[@]}" --run-dir "$work/train_cpu" \
    --set model.device=cpu --set comm.backend=mpi
}
train_check() {
  cpu_reference || return 1
  rm -rf "$work/train_dev"
  "$sparc" train "${tiny_args[@]}" --run-dir "$work/train_dev" \
    --set model.device=$dev --set comm.backend=$backend || return 1
  grep -iE "device|backend|cuda" "$work/train_dev/log.txt" | head -5
  $python tests/gpu/compare.py runs "$work/train_cpu" "$work/train_dev" 0.04 1e-2
}
if want train; then
  [ $rehearse -eq 1 ] && skip train_cuda "no GPU: the device run is cpu + mpi"
  step train train_check
fi
resume_check() {
  cpu_reference || return 1
  rm -rf "$work/resume"
  # 64 examples / batch 16: 4 steps a task; the kill at step 6 leaves task 1's checkpoint.
  SPARC_FAULT=kill@step:6 "$sparc" --log-level warn train "${tiny_args[@]}" --run-dir "$work/resume" \
    --set model.device=cpu --set comm.backend=mpi && { echo "the injected kill did not stop the run"; return 1; }
  ls "$work/resume/checkpoints"
  "$sparc" train "${tiny_args[@]}" --run-dir "$work/resume" --resume auto \
    --set model.device=$dev --set comm.backend=$backend || return 1
  $python tests/gpu/compare.py runs "$work/train_cpu" "$work/resume" 0.04 1e-2
}
if want resume; then
  [ $rehearse -eq 1 ] && skip resume_cuda "no GPU: the cpu checkpoint resumes on the cpu"
  step resume resume_check
fi

# ---- bench_step: GEMM peak and a bf16 step with MFU on a ~1B llama ----
bench_step_check() {
  local m dtype steps size
  if [ $rehearse -eq 1 ]; then
    m=$work/bench-d512 dtype=f32 steps=1 size=1024
    [ -d "$m" ] || "$sparc" random-model --out "$m" || return 1
  else
    # D 2048, 16 blocks, FFN 5632, vocab 32000: 0.95 B parameters, 1.9 GB in bf16.
    m=$work/bench-1b dtype=bf16 steps=10 size=8192
    [ -d "$m" ] || "$sparc" random-model --out "$m" --dim 2048 --layers 16 --heads 16 --ffn 5632 \
      --vocab 32000 --dtype bf16 || return 1
  fi
  "$sparc" bench gemm --backend $backend --dtype $dtype --size $size --json >"$OUT/bench_gemm.jsonl" || return 1
  local peak
  peak=$($python -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["gflops_per_rank"])' \
    "$OUT/bench_gemm.jsonl") || return 1
  "$sparc" bench step --config configs/bench-d512.yaml --set model.path="$m" --set model.dtype=$dtype \
    --set model.device=$dev --set comm.backend=$backend --peak-gflops "$peak" --steps $steps --json \
    >"$OUT/bench_step.jsonl" || return 1
  cat "$OUT/bench_gemm.jsonl" "$OUT/bench_step.jsonl"
}
if want bench_step; then
  [ $rehearse -eq 1 ] && skip bench_step_1b_bf16 "no GPU: f32 on the 25 M-parameter d512 model, 1 step"
  step bench_step bench_step_check
fi

# ---- peft: the export in Hugging Face peft, logits against sparc's ----
if want peft; then
  if $python -c 'import peft, transformers' 2>/dev/null; then
    step peft $python tests/gpu/peft_load.py "$sparc" "$alog" "$work/peft"
  else
    skip peft "$python has no peft + transformers (the GPU machine has them)"
  fi
fi

echo "== status"
cat "$OUT/status"
exit "$failed"
