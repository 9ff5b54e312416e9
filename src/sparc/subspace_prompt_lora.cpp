// `sparc+lora`: the subspace prompt plus LoRA adapters owned by each task
// (SPEC 1.5), so old tasks keep theirs.
#include "sparc/lora_sites.h"
#include "sparc/subspace_prompt.h"

namespace sparc {
namespace {

class SubspacePromptLoraMethod : public SubspacePromptMethod {
 public:
  using SubspacePromptMethod::SubspacePromptMethod;

  TaskRecord initial_record(const MethodContext& ctx, std::size_t task, const std::string& name,
                            const Subspace& subspace, bool log) const override {
    TaskRecord r = SubspacePromptMethod::initial_record(ctx, task, name, subspace, log);
    r.lora = fresh_lora(ctx.model, ctx.cfg.lora, ctx.cfg.seed, task);
    return r;
  }

  Trainables begin_task(TaskRecord& r, LoraSet& shared, Transformer& model) const override {
    Trainables t = SubspacePromptMethod::begin_task(r, shared, model);
    for (auto& [site, a] : r.lora) {
      t.lora_group.insert(t.lora_group.end(), {a->a, a->b});
      t.names.push_back("lora." + site + ".a");
      t.names.push_back("lora." + site + ".b");
    }
    return t;
  }

  void end_task(TaskRecord& r, LoraSet& shared, Transformer& model) const override {
    SubspacePromptMethod::end_task(r, shared, model);
    for (auto& [site, a] : r.lora) {
      a->a = a->a.detach();
      a->b = a->b.detach();
    }
  }

  std::int64_t trainable_per_task(const RunConfig& cfg, Transformer& model) const override {
    return SubspacePromptMethod::trainable_per_task(cfg, model) +
           lora_parameter_count(model, cfg.lora);
  }
};

}  // namespace

std::unique_ptr<Method> make_subspace_prompt_lora_method() {
  return std::make_unique<SubspacePromptLoraMethod>(MethodId::kSparcLora);
}

}  // namespace sparc
