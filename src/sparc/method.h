// The continual-learning methods (SPEC 1.8) as types behind one small
// interface: how a task's parameters start (SPEC 1.2-1.5), what trains, what
// prefix goes before the input, how training ends, what a task stores, and
// how many values train. The trainer holds one Method and never asks which.
//
// Adding a method: a row in config/method.cpp's table (its name and traits),
// one file here implementing Method, and one line in make_method's table
// (method.cpp).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "config/method.h"
#include "config/run_config.h"
#include "model/transformer.h"
#include "sparc/task_record.h"

namespace sparc {

// What a method may read of the run when it sets up a task.
struct MethodContext {
  const RunConfig& cfg;
  Transformer& model;
  const std::vector<TaskRecord>& library;  // the finished tasks, in order
  // P token embeddings [P, D] (f64) sampled from task `task`'s own training
  // tokens by keyed draws (SPEC 1.2's initialisation).
  std::function<torch::Tensor(std::size_t task)> sampled_embeddings;
};

// One task's trainable tensors, in the optimizer's order: the prompt group
// (train.lr), then the LoRA group (lora.lr). `names` are the checkpoint's
// names of the same tensors ("z", "prompt", "weights.<canonical>",
// "lora.<site>.a"), in that order.
struct Trainables {
  std::vector<torch::Tensor> prompt_group, lora_group;
  std::vector<std::string> names;
  const LoraSet* adapters = nullptr;  // installed in the model while the task trains
};

class Method {
 public:
  explicit Method(MethodId id) : traits_(method_traits(id)) {}
  virtual ~Method() = default;
  const MethodTraits& traits() const { return traits_; }

  // State shared by every task, made once before the first (`lora`'s one adapter set).
  virtual void begin_run(const MethodContext& ctx, LoraSet& shared) const {}

  // The record task `task` starts from given the library so far: also what
  // a task not trained yet is evaluated with (SPEC 2's forward transfer).
  // `log` writes the reuse/orthogonal decision to the log.
  virtual TaskRecord initial_record(const MethodContext& ctx, std::size_t task,
                                    const std::string& name, const Subspace& subspace,
                                    bool log) const;

  // Makes this task's trainable tensors leaves that require gradients.
  virtual Trainables begin_task(TaskRecord& record, LoraSet& shared, Transformer& model) const = 0;

  // The prefix [P, D] placed before the tokens while training, differentiable
  // in the trainable tensors; undefined: none.
  virtual torch::Tensor prefix(const TaskRecord& record) const { return {}; }

  // A regulariser added to the loss once per optimizer step, built once per
  // task from the library; empty: none.
  virtual std::function<torch::Tensor(const TaskRecord&)> penalty(
      const std::vector<TaskRecord>& library, double lambda) const {
    return {};
  }

  // Freezes what the task trained (its record then holds its final state).
  virtual void end_task(TaskRecord& record, LoraSet& shared, Transformer& model) const = 0;

  // Values trained per task (SPEC 2's trainable-parameter fraction).
  virtual std::int64_t trainable_per_task(const RunConfig& cfg, Transformer& model) const = 0;

  // Whether each task has its own prefix, so a test example is routed to a
  // stored task in the domain-incremental setting (SPEC 1.7); otherwise every
  // task is evaluated with the run's shared state.
  bool per_task() const { return traits_.prompt != PromptKind::kNone; }

 private:
  const MethodTraits& traits_;
};

// The method of a run.
std::unique_ptr<Method> make_method(MethodId id);

}  // namespace sparc
