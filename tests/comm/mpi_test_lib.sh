# Shared by the mpirun test scripts: skip (exit 77, CTest's SKIP_RETURN_CODE;
# a failure under CI=true, tests/skip_lib.sh) without the shared model, and run
# every rank as root with one BLAS/OpenMP thread. Sourced after `root` is set
# to the project root.
. "$(dirname "${BASH_SOURCE[0]}")/../skip_lib.sh"
model="$root/../shared/models/aidreams260K/model.bin"
require_shared "$model"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
fail() { echo "FAIL: $*"; exit 1; }
