// The method table (config/method.h) against SPEC 1.8, written out here
// independently, and the method's round trip through a run config.
#include "config/method.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "config/run_config.h"

namespace sparc {
namespace {

// SPEC 1.8: sparc trains a subspace prompt Z (P x k) per task; sparc+lora adds
// per-task LoRA adapters (1.5: "adapters belong to the task"); prompt is
// ordinary prompt tuning (P x D) per task; lora is LoRA alone, one set for
// the run (the most recent adapters, SPEC 2); full trains every weight.
struct Expected {
  MethodId id;
  std::string name;
  PromptKind prompt;
  LoraKind lora;
  bool trains_weights;
};
const std::vector<Expected> kSpec = {
    {MethodId::kSparc, "sparc", PromptKind::kSubspace, LoraKind::kNone, false},
    {MethodId::kSparcLora, "sparc+lora", PromptKind::kSubspace, LoraKind::kPerTask, false},
    {MethodId::kPrompt, "prompt", PromptKind::kFree, LoraKind::kNone, false},
    {MethodId::kLora, "lora", PromptKind::kNone, LoraKind::kShared, false},
    {MethodId::kFull, "full", PromptKind::kNone, LoraKind::kNone, true},
};

const std::string kMinimal =
    "model:\n"
    "  path: m\n"
    "tasks:\n"
    "  - name: a\n"
    "    train: a/train.jsonl\n"
    "    test: a/test.jsonl\n"
    "    verbalizer: {neg: bad, pos: good}\n";

TEST(Method, TraitsMatchTheSpec) {
  ASSERT_EQ(all_methods().size(), kSpec.size());
  for (std::size_t i = 0; i < kSpec.size(); ++i) {
    const Expected& e = kSpec[i];
    const MethodTraits& t = method_traits(e.id);
    EXPECT_EQ(t.id, e.id) << e.name;
    EXPECT_EQ(std::string(t.name), e.name);
    EXPECT_EQ(t.prompt, e.prompt) << e.name;
    EXPECT_EQ(t.lora, e.lora) << e.name;
    EXPECT_EQ(t.trains_weights, e.trains_weights) << e.name;
    // all_methods() lists the rows in the documented order.
    EXPECT_EQ(all_methods()[i].id, e.id) << e.name;
    EXPECT_EQ(&all_methods()[i], &t) << e.name;
  }
}

TEST(Method, EveryNameRoundTrips) {
  for (const Expected& e : kSpec) {
    MethodId id = e.id == MethodId::kFull ? MethodId::kSparc : MethodId::kFull;  // not e.id
    ASSERT_TRUE(parse_method_name(e.name, &id)) << e.name;
    EXPECT_EQ(id, e.id) << e.name;
    EXPECT_EQ(method_name(id), e.name);
  }
}

TEST(Method, UnknownNamesAreRefusedWithTheList) {
  for (const std::string bad : {"spark", "", "Sparc", "sparc ", "sparc-lora", "lora+sparc"}) {
    MethodId id = MethodId::kPrompt;
    EXPECT_FALSE(parse_method_name(bad, &id)) << "'" << bad << "'";
    EXPECT_EQ(id, MethodId::kPrompt) << "left as it was for '" << bad << "'";
  }
  EXPECT_EQ(method_names_list(), "sparc, sparc+lora, prompt, lora, full");
  try {
    parse_run_config("method: spark\n" + kMinimal, "x.yaml", "");
    FAIL() << "method spark was accepted";
  } catch (const ConfigError& e) {
    ASSERT_EQ(e.problems().size(), 1u);
    EXPECT_EQ(e.problems()[0],
              "x.yaml:1: method: expected one of sparc, sparc+lora, prompt, lora, full; got "
              "'spark' (did you mean 'sparc'?)");
  }
}

TEST(Method, RunConfigReadsWritesAndDescribesEveryMethod) {
  for (const Expected& e : kSpec) {
    const RunConfig c = parse_run_config(kMinimal, "x.yaml", "", {"method=" + e.name});
    EXPECT_EQ(c.method, e.id) << e.name;
    EXPECT_EQ(&c.method_traits(), &method_traits(e.id));
    EXPECT_EQ(c.uses_subspace(), e.prompt == PromptKind::kSubspace) << e.name;
    EXPECT_EQ(c.per_task_prompt(), e.prompt != PromptKind::kNone) << e.name;
    EXPECT_EQ(c.uses_lora(), e.lora != LoraKind::kNone) << e.name;
    EXPECT_EQ(c.trains_weights(), e.trains_weights) << e.name;
    // The resolved config names the method as configs and checkpoints spell it.
    const std::string yaml = to_yaml(c);
    EXPECT_NE(yaml.find("method: \"" + e.name + "\"\n"), std::string::npos) << yaml;
    EXPECT_EQ(parse_run_config(yaml, "again.yaml", ""), c) << e.name;
  }
}

}  // namespace
}  // namespace sparc
