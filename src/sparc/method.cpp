#include "sparc/method.h"

#include <map>

#include "core/error.h"

namespace sparc {

// One line per method: its id and the file that implements it.
std::unique_ptr<Method> make_subspace_prompt_method();       // subspace_prompt.cpp
std::unique_ptr<Method> make_subspace_prompt_lora_method();  // subspace_prompt_lora.cpp
std::unique_ptr<Method> make_free_prompt_method();           // free_prompt.cpp
std::unique_ptr<Method> make_shared_lora_method();           // shared_lora.cpp
std::unique_ptr<Method> make_full_finetune_method();         // full_finetune.cpp

std::unique_ptr<Method> make_method(MethodId id) {
  static const std::map<MethodId, std::unique_ptr<Method> (*)()> kMethods = {
      {MethodId::kSparc, &make_subspace_prompt_method},
      {MethodId::kSparcLora, &make_subspace_prompt_lora_method},
      {MethodId::kPrompt, &make_free_prompt_method},
      {MethodId::kLora, &make_shared_lora_method},
      {MethodId::kFull, &make_full_finetune_method},
  };
  auto it = kMethods.find(id);
  if (it == kMethods.end())
    throw std::logic_error("no implementation registered for method " + method_name(id));
  return it->second();
}

TaskRecord Method::initial_record(const MethodContext&, std::size_t, const std::string& name,
                                  const Subspace& subspace, bool) const {
  TaskRecord r;
  r.name = name;
  r.subspace = subspace;
  return r;
}

}  // namespace sparc
