// `lora`: one set of LoRA adapters trained through the whole sequence (SPEC
// 1.8's LoRA baseline): no per-task state, so it forgets like `full`.
#include "sparc/lora_sites.h"
#include "sparc/method.h"

namespace sparc {
namespace {

class SharedLoraMethod : public Method {
 public:
  using Method::Method;

  void begin_run(const MethodContext& ctx, LoraSet& shared) const override {
    shared = fresh_lora(ctx.model, ctx.cfg.lora, ctx.cfg.seed, 0);
  }

  Trainables begin_task(TaskRecord&, LoraSet& shared, Transformer&) const override {
    Trainables t;
    for (auto& [site, a] : shared) {
      t.lora_group.insert(t.lora_group.end(), {a->a, a->b});
      t.names.push_back("lora." + site + ".a");
      t.names.push_back("lora." + site + ".b");
    }
    t.adapters = &shared;
    return t;
  }

  void end_task(TaskRecord&, LoraSet&, Transformer&) const override {}

  std::int64_t trainable_per_task(const RunConfig& cfg, Transformer& model) const override {
    return lora_parameter_count(model, cfg.lora);
  }
};

}  // namespace

std::unique_ptr<Method> make_shared_lora_method() {
  return std::make_unique<SharedLoraMethod>(MethodId::kLora);
}

}  // namespace sparc
