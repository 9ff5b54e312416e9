#include "config/method.h"

#include <cstddef>
#include <stdexcept>

namespace sparc {
namespace {

// One row per method (SPEC 1.8); a new method is a new row here and a new
// MethodId. The order is the one messages and the demo list them in. A
// function's static, so that other files' static initialisers may use it.
const std::vector<MethodTraits>& table() {
  static const std::vector<MethodTraits> rows = {
      // id                   name          prompt                 lora               trains_weights
      {MethodId::kSparc,     "sparc",      PromptKind::kSubspace, LoraKind::kNone,    false},
      {MethodId::kSparcLora, "sparc+lora", PromptKind::kSubspace, LoraKind::kPerTask, false},
      {MethodId::kPrompt,    "prompt",     PromptKind::kFree,     LoraKind::kNone,    false},
      {MethodId::kLora,      "lora",       PromptKind::kNone,     LoraKind::kShared,  false},
      {MethodId::kFull,      "full",       PromptKind::kNone,     LoraKind::kNone,    true},
  };
  return rows;
}

// The names as std::string, row for row, for method_name's reference.
const std::vector<std::string>& names() {
  static const std::vector<std::string> list = [] {
    std::vector<std::string> l;
    for (const auto& m : table()) l.emplace_back(m.name);
    return l;
  }();
  return list;
}

std::size_t row_of(MethodId id) {
  for (std::size_t i = 0; i < table().size(); ++i)
    if (table()[i].id == id) return i;
  // Only a value cast from outside the enum gets here.
  throw std::logic_error("method id " + std::to_string(static_cast<int>(id)) +
                         " has no row in the method table");
}

}  // namespace

const MethodTraits& method_traits(MethodId id) { return table()[row_of(id)]; }

const std::string& method_name(MethodId id) { return names()[row_of(id)]; }

bool parse_method_name(const std::string& name, MethodId* out) {
  for (const auto& m : table())
    if (name == m.name) {
      *out = m.id;
      return true;
    }
  return false;
}

const std::vector<MethodTraits>& all_methods() { return table(); }

std::string method_names_list() {
  std::string s;
  for (const auto& m : table()) s += (s.empty() ? "" : ", ") + std::string(m.name);
  return s;
}

}  // namespace sparc
