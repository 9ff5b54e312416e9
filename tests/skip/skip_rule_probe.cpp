// Run by tests/skip/skip_rule_test.sh with and without CI=true; not a test
// on its own (under CI it fails by design).
#include "test_util.h"

TEST(SkipRuleProbe, AbsentSharedFile) {
  SPARC_REQUIRE_SHARED("no-such-folder/skip-rule-probe.bin");
  ADD_FAILURE() << "ran on past an absent prerequisite";
}
