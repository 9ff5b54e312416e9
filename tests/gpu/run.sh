#!/usr/bin/env bash
# GPU checks of the NCCL communicator, for the GPU machine of
# ../shared/GPU.md (beside the checkout). Written without a GPU: not yet run there.
#
# NEEDS on the GPU machine:
#   - CUDA 13 (nvcc), cmake >= 3.22, ninja, g++, and a python3 whose torch is
#     a CUDA build (its LibTorch is used) with the pip package
#     nvidia-nccl-cu13 (its include/ and lib/ serve as NCCL_HOME);
#   - the libraries apt gives on the build machine, under one prefix: either
#     SPARC_DEPS_PREFIX=/some/root (holding usr/...), or Debian packages in
#     build-gpudeps/debs/, which this script unpacks into build-gpudeps/root.
#     Fetch them on the build machine with `tests/gpu/run.sh --fetch-debs`
#     and name "build-gpudeps" in the run's carry.
# DOES: configure and build (build-gpu/), run the communicator conformance
# suite on NCCL (1 rank, CUDA tensors) and `sparc bench allreduce` on NCCL
# and MPI, `sparc bench gemm` (bf16, f32) on the GPU and `sparc bench step`
# of configs/bench-d512.yaml in bf16 on cuda, writing logs and JSON lines
# under $OUT (default build-gpu/out).
# Exit status 0 when every step passed; each step's status is in $OUT/status.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1

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
if [ "${1:-}" = "--fetch-debs" ]; then
  mkdir -p build-gpudeps/debs && cd build-gpudeps/debs && apt-get download "${debs[@]}"
  du -sh .
  exit
fi

OUT=${OUT:-$PWD/build-gpu/out}
mkdir -p "$OUT"
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

# ---- Dependencies ----
root=${SPARC_DEPS_PREFIX:-$PWD/build-gpudeps/root}
if [ -z "${SPARC_DEPS_PREFIX:-}" ] && compgen -G "build-gpudeps/debs/*.deb" >/dev/null; then
  mkdir -p "$root"
  for d in build-gpudeps/debs/*.deb; do dpkg -x "$d" "$root"; done
fi
usr=$root/usr
lib=$usr/lib/x86_64-linux-gnu
export OPAL_PREFIX=$usr  # Open MPI relocated: finds its plugins and help files here
export OMPI_MCA_ess_singleton_isolated=1  # one rank without mpirun: no orted needed
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export PATH=$usr/bin:$PATH
torch_prefix=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')
nccl_home=${NCCL_HOME:-$(python3 -c 'import nvidia.nccl as n; print(list(n.__path__)[0])')}
torch_lib=$(python3 -c 'import torch, os; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
export LD_LIBRARY_PATH=$lib:$lib/openmpi/lib:$lib/hdf5/serial:$nccl_home/lib:$torch_lib:${LD_LIBRARY_PATH:-}
nvidia-smi -L >"$OUT/gpu.txt" 2>&1

# ---- Build ----
# The pip NCCL ships libnccl.so.2 without the libnccl.so link: name it directly.
step configure cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$torch_prefix;$usr;$lib/cmake" \
  -DMPI_CXX_COMPILER="$usr/bin/mpicxx.openmpi" -DMPIEXEC_EXECUTABLE="$usr/bin/mpirun.openmpi" \
  -DHDF5_ROOT="$lib/hdf5/serial" \
  -DNCCL_INCLUDE_DIR="$nccl_home/include" -DNCCL_LIBRARY="$nccl_home/lib/libnccl.so.2" \
  -DSPARC_WITH_CUDA=ON -DSPARC_WITH_NCCL=ON -DSPARC_USE_CCACHE=OFF || exit 1
step build cmake --build build-gpu -j "$(nproc)" --target sparc communicator_mpi_test || exit 1

# ---- NCCL: conformance (world size 1, a real NCCL communicator) and bench ----
step comm_nccl_1rank env SPARC_TEST_BACKEND=nccl build-gpu/tests/communicator_mpi_test
step comm_mpi_1rank env SPARC_TEST_BACKEND=mpi build-gpu/tests/communicator_mpi_test
step bench_allreduce_nccl sh -c "build-gpu/sparc bench allreduce --backend nccl --json \
  >'$OUT/bench_allreduce_nccl.jsonl'"
step bench_allreduce_mpi sh -c "build-gpu/sparc bench allreduce --backend mpi --json \
  >'$OUT/bench_allreduce_mpi.jsonl'"
cat "$OUT"/bench_allreduce_*.jsonl 2>/dev/null

# ---- Compute: the GEMM peak on the GPU and a bf16 training step (docs/benchmarks.md) ----
step bench_gemm sh -c "build-gpu/sparc bench gemm --backend nccl --dtype bf16 --size 8192 --json \
  >'$OUT/bench_gemm.jsonl' && build-gpu/sparc bench gemm --backend nccl --dtype f32 --size 8192 \
  --json >>'$OUT/bench_gemm.jsonl'"
peak=$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["gflops_per_rank"])' \
  "$OUT/bench_gemm.jsonl" 2>/dev/null || echo 0)
step random_model build-gpu/sparc random-model --out build-gpu/bench-d512
step bench_step_bf16 sh -c "build-gpu/sparc bench step --config configs/bench-d512.yaml \
  --set model.path=$PWD/build-gpu/bench-d512 --set model.dtype=bf16 --set model.device=cuda \
  --peak-gflops $peak --steps 10 --json >'$OUT/bench_step_bf16.jsonl'"
cat "$OUT"/bench_gemm.jsonl "$OUT"/bench_step_bf16.jsonl 2>/dev/null

# ---- PEFT: the export of a sparc+lora checkpoint loads in Hugging Face peft ----
step peft_load python3 tests/gpu/peft_load.py build-gpu/sparc "$OUT/peft_work"

echo "== status"
cat "$OUT/status"
exit "$failed"
