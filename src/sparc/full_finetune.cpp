// `full`: sequential fine-tuning of every weight (SPEC 1.8), the classic
// forgetting baseline. Its weights and their moments go into checkpoints.
#include "sparc/method.h"

namespace sparc {
namespace {

class FullFinetuneMethod : public Method {
 public:
  using Method::Method;

  Trainables begin_task(TaskRecord& r, LoraSet&, Transformer& model) const override {
    Trainables t;
    model.set_weights_trainable(true);
    for (auto& [name, w] : model.named_weights()) {
      t.prompt_group.push_back(w);
      t.names.push_back("weights." + name);
    }
    t.adapters = &r.lora;
    return t;
  }

  void end_task(TaskRecord&, LoraSet&, Transformer& model) const override {
    model.set_weights_trainable(false);
  }

  std::int64_t trainable_per_task(const RunConfig&, Transformer& model) const override {
    return model.parameter_count();
  }
};

}  // namespace

std::unique_ptr<Method> make_full_finetune_method() {
  return std::make_unique<FullFinetuneMethod>(MethodId::kFull);
}

}  // namespace sparc
