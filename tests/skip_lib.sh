# When a test script may skip (exit 77, CTest's SKIP_RETURN_CODE); sourced
# by the test scripts, directly or through tests/comm/mpi_test_lib.sh and
# tests/cluster/cluster_lib.sh. The same rule as SPARC_REQUIRE in
# tests/test_util.h:
#   require_prereq WHY  a prerequisite CI provides (../shared, /usr/bin/python3
#                       with torch or numpy) is absent: skip, saying why; under
#                       CI (CI=true) fail instead, so a broken set-up cannot pass.
#   skip_test WHY       absent for a reason CI may have too (no mount
#                       permission, not root, a source npm could not fetch):
#                       skip, saying why.
# require_shared FILE and require_python MODULE check the two usual ones.

# CI=true (any value but empty, 0, false, no).
in_ci() {
  case "${CI:-}" in "" | 0 | false | False | FALSE | no) return 1 ;; *) return 0 ;; esac
}

skip_test() { echo "skipped: $*"; exit 77; }

require_prereq() {
  if in_ci; then
    echo "FAIL: $* (CI=true: required in CI, so a failure, not a skip)"
    exit 1
  fi
  skip_test "$*"
}

require_shared() { [ -f "$1" ] || require_prereq "shared data absent: $1"; }

require_python() {
  /usr/bin/python3 -c "import $1" 2>/dev/null || require_prereq "/usr/bin/python3 with $1 absent"
}
