#!/usr/bin/env bash
# Takes a fresh Debian 12 machine to a Release build of sparc in build/.
# Installs the Debian packages that are missing (as root, or through sudo),
# configures with CMake and builds. Safe to run again: it installs nothing
# twice and rebuilds only what changed (ccache keeps objects across clones,
# in ~/.cache/ccache).
#
#   scripts/setup.sh             install + configure + build
#   scripts/setup.sh --deps      install only
#   SPARC_BUILD_DIR=dir          build somewhere else than build/
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config git
  procps coreutils      # pgrep and timeout in the mpirun test scripts
  libtorch-dev          # tensors and autograd (LibTorch 1.13, CPU)
  libopenblas0-pthread  # without it LibTorch's fp32 matrix products fall back to reference BLAS (~25x slower)
  libopenmpi-dev openmpi-bin  # process bootstrap and CPU collectives
  libhdf5-dev           # checkpoints (C and C++ APIs)
  libeigen3-dev         # small dense linear algebra
  libspdlog-dev libfmt-dev  # logs
  libgtest-dev libgmock-dev  # tests
  libyaml-cpp-dev       # configs
  libcli11-dev          # command line
  nlohmann-json3-dev    # JSON, JSONL, safetensors headers
  libpcre2-dev          # tokenizer.json pre-tokenizer regexes (Unicode classes, lookahead)
  sentencepiece         # spm_train / spm_encode, run by the tokenizer.model tests
  python3-torch python3-numpy  # the independent PyTorch reference the tests compare against
  clang libclang-rt-14-dev  # libFuzzer and sanitizer runtimes (scripts/ci-extra.sh)
)

log() { printf '[setup %s] %s\n' "$(date +%H:%M:%S)" "$*"; }

install_packages() {
  local missing=()
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    log "all ${#PACKAGES[@]} Debian packages present"
    return
  fi
  log "installing: ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -q
  $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
}

t0=$(date +%s)
install_packages
t1=$(date +%s)
log "packages: $((t1 - t0)) s"
[ "${1:-}" = "--deps" ] && exit 0

build_dir=${SPARC_BUILD_DIR:-build}
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build "$build_dir" -j "$(nproc)"
t2=$(date +%s)
log "configure + build: $((t2 - t1)) s"
log "binary: $build_dir/sparc"
