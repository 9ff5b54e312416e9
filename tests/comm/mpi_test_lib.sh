# Shared by the mpirun test scripts: skip (exit 77, CTest's SKIP_RETURN_CODE)
# without the shared model, and run every rank as root with one BLAS/OpenMP
# thread. Sourced after `root` is set to the project root.
model="$root/../shared/models/aidreams260K/model.bin"
if [ ! -f "$model" ]; then echo "skipped: shared data absent: $model"; exit 77; fi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
fail() { echo "FAIL: $*"; exit 1; }
