// The continual-learning method of a run, parsed once from its name into a
// type whose traits say what it trains, so that no code compares names.
#pragma once

#include <string>
#include <vector>

namespace sparc {

// The continual-learning methods (SPEC 1.8). MethodId is the parsed form; the name is the
// serialised form (config files, checkpoint attribute, results.json, the report).
enum class MethodId { kSparc, kSparcLora, kPrompt, kLora, kFull };
enum class PromptKind { kNone, kSubspace, kFree };  // per-task soft prompt: PCA-subspace (P x k) or free (P x D)
enum class LoraKind { kNone, kPerTask, kShared };   // adapters owned by each task, or one set for the run
struct MethodTraits {
  MethodId id;
  const char* name;      // "sparc", "sparc+lora", "prompt", "lora", "full"
  PromptKind prompt;
  LoraKind lora;
  bool trains_weights;   // full fine-tuning
};
const MethodTraits& method_traits(MethodId id);
const std::string& method_name(MethodId id);
// false when `name` is not a method's name.
bool parse_method_name(const std::string& name, MethodId* out);
// Every method, in the table's order (sparc, sparc+lora, prompt, lora, full).
const std::vector<MethodTraits>& all_methods();
// "sparc, sparc+lora, prompt, lora, full": for messages.
std::string method_names_list();

}  // namespace sparc
