#!/usr/bin/env bash
# The skip rule (tests/skip_lib.sh, SPARC_REQUIRE in tests/test_util.h): a
# missing prerequisite that CI provides skips (77, or gtest's SKIPPED) with
# the reason outside CI, and fails naming it under CI=true; a reason CI may
# have too skips in both. Checked through the real mpirun-test preamble
# (tests/comm/mpi_test_lib.sh) on a root whose ../shared is absent, and the
# C++ macro through a probe binary.
#   skip_rule_test.sh PROBE_BINARY PROJECT_ROOT
set -u
probe=$1
root=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

# check NAME WANT_RC WANT_TEXT CI_VALUE COMMAND...: runs COMMAND with CI set
# to CI_VALUE ("-" for unset) and checks its exit status and output.
check() {
  local name=$1 want_rc=$2 want_text=$3 ci=$4
  shift 4
  local out rc
  if [ "$ci" = - ]; then
    out=$(env -u CI "$@" 2>&1)
  else
    out=$(env CI="$ci" "$@" 2>&1)
  fi
  rc=$?
  [ "$rc" -eq "$want_rc" ] || fail "$name (CI=$ci): exit $rc, expected $want_rc; output: $out"
  grep -qF -- "$want_text" <<<"$out" || fail "$name (CI=$ci): no '$want_text' in: $out"
  echo "ok: $name (CI=$ci): exit $rc, '$want_text'"
}

lib="$root/tests/skip_lib.sh"
absent="$work/shared/models/none.bin"
check require_shared 77 "skipped: shared data absent: $absent" - \
  bash -c '. "$1"; require_shared "$2"; echo ran on' _ "$lib" "$absent"
check require_shared 77 "skipped: shared data absent: $absent" false \
  bash -c '. "$1"; require_shared "$2"; echo ran on' _ "$lib" "$absent"
check require_shared 1 "FAIL: shared data absent: $absent (CI=true" true \
  bash -c '. "$1"; require_shared "$2"; echo ran on' _ "$lib" "$absent"
check require_shared_present 0 "ran on" true \
  bash -c '. "$1"; require_shared "$2"; echo ran on' _ "$lib" "$lib"
check require_python 77 "skipped: /usr/bin/python3 with sparc_no_such_module absent" - \
  bash -c '. "$1"; require_python sparc_no_such_module; echo ran on' _ "$lib"
check require_python 1 "FAIL: /usr/bin/python3 with sparc_no_such_module absent" true \
  bash -c '. "$1"; require_python sparc_no_such_module; echo ran on' _ "$lib"
check skip_test 77 "skipped: mounts not permitted here" true \
  bash -c '. "$1"; skip_test "mounts not permitted here"; echo ran on' _ "$lib"

# The real preamble of the mpirun tests, on a project root without ../shared
# beside it: it stops before running the binary (here one that would fail).
mkdir -p "$work/root/tests"
cp -r "$root/tests/comm" "$work/root/tests/comm"
cp "$lib" "$work/root/tests/skip_lib.sh"
check mpi_test_lib 77 "skipped: shared data absent: $work/root/../shared/models/aidreams260K/model.bin" - \
  bash "$work/root/tests/comm/startup_agreement_test.sh" /bin/false "$work/root"
check mpi_test_lib 1 "FAIL: shared data absent: $work/root/../shared/models/aidreams260K/model.bin" true \
  bash "$work/root/tests/comm/startup_agreement_test.sh" /bin/false "$work/root"

# The C++ rule: SPARC_REQUIRE_SHARED on a file that is not there.
check SPARC_REQUIRE_SHARED 0 "[  SKIPPED ] SkipRuleProbe.AbsentSharedFile" - "$probe"
check SPARC_REQUIRE_SHARED 0 "no-such-folder/skip-rule-probe.bin" - "$probe"
check SPARC_REQUIRE_SHARED 1 "[  FAILED  ] SkipRuleProbe.AbsentSharedFile" true "$probe"
check SPARC_REQUIRE_SHARED 1 "no-such-folder/skip-rule-probe.bin (CI=true" true "$probe"
echo "ok: the skip rule holds for shell and C++"
