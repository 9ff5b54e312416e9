// `sparc` (SPEC 1.2-1.4): a P x k prompt in the task's PCA subspace,
// initialised by reuse of a similar stored task's prompt or orthogonally to
// every stored prompt. `sparc+lora` extends it (subspace_prompt_lora.cpp).
#pragma once

#include "sparc/method.h"

namespace sparc {

class SubspacePromptMethod : public Method {
 public:
  using Method::Method;
  TaskRecord initial_record(const MethodContext& ctx, std::size_t task, const std::string& name,
                            const Subspace& subspace, bool log) const override;
  Trainables begin_task(TaskRecord& record, LoraSet& shared, Transformer& model) const override;
  torch::Tensor prefix(const TaskRecord& record) const override;
  std::function<torch::Tensor(const TaskRecord&)> penalty(const std::vector<TaskRecord>& library,
                                                          double lambda) const override;
  void end_task(TaskRecord& record, LoraSet& shared, Transformer& model) const override;
  std::int64_t trainable_per_task(const RunConfig& cfg, Transformer& model) const override;
};

}  // namespace sparc
