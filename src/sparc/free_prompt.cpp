// `prompt`: ordinary prompt tuning (SPEC 1.8), a free P x D prompt per task,
// initialised from token embeddings sampled from the task's own inputs.
#include "sparc/method.h"

namespace sparc {
namespace {

class FreePromptMethod : public Method {
 public:
  using Method::Method;

  TaskRecord initial_record(const MethodContext& ctx, std::size_t task, const std::string& name,
                            const Subspace& subspace, bool log) const override {
    TaskRecord r = Method::initial_record(ctx, task, name, subspace, log);
    r.prompt = ctx.sampled_embeddings(task).to(torch::kFloat32);
    return r;
  }

  Trainables begin_task(TaskRecord& r, LoraSet&, Transformer&) const override {
    Trainables t;
    r.prompt = r.prompt.detach().clone().requires_grad_(true);
    t.prompt_group.push_back(r.prompt);
    t.names.push_back("prompt");
    t.adapters = &r.lora;
    return t;
  }

  torch::Tensor prefix(const TaskRecord& r) const override { return r.prompt; }

  void end_task(TaskRecord& r, LoraSet&, Transformer&) const override {
    r.prompt = r.prompt.detach();
  }

  std::int64_t trainable_per_task(const RunConfig& cfg, Transformer& model) const override {
    return std::int64_t(cfg.prompt.length) * model.config().dim;
  }
};

}  // namespace

std::unique_ptr<Method> make_free_prompt_method() {
  return std::make_unique<FreePromptMethod>(MethodId::kPrompt);
}

}  // namespace sparc
