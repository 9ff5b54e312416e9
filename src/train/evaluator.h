// Evaluation (SPEC 1.6, 1.7, 2): class scores by verbalizer, accuracy of a
// task with given parameters, routing in the domain-incremental setting,
// rows of the accuracy matrix, and perplexity. Data parallel in fixed
// units (SPEC 3): each rank scores the units dealt to it and the counts and
// sums are exact, so results do not depend on the world size.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "train/run_context.h"

namespace sparc {

// Class scores [B, C] (f32): the logits of each class's token at the answer
// position, after `prefix` ([P, D], or undefined for none).
torch::Tensor class_scores(RunContext& c, const std::vector<const EncodedExample*>& batch,
                           const torch::Tensor& prefix, const std::vector<std::int32_t>& labels);

// Correct predictions among `examples` (the same list on every rank) with
// one prefix and the installed adapters: units of eval.batch_size examples
// in list order, dealt round robin, counts summed over the ranks.
std::int64_t count_correct(RunContext& c, const std::vector<const EncodedExample*>& examples,
                           const torch::Tensor& prefix, const std::vector<std::int32_t>& labels);

std::vector<const EncodedExample*> pointers(const std::vector<EncodedExample>& xs);

// Accuracy on task j's test split with the parameters of `record` (null:
// the run's shared state alone).
double accuracy_with(RunContext& c, std::size_t j, const TaskRecord* record);

// Whether test examples are routed to a stored task (SPEC 1.7): the
// domain-incremental setting with a method that keeps a prompt per task.
bool routes_examples(const RunContext& c);

// Row i of the accuracy matrix (SPEC 2), after task i. In the
// domain-incremental setting with per-task methods, test examples are
// routed; the routing hits of the last row are added to `routed_right`.
std::vector<double> evaluate_row(RunContext& c, std::size_t i, std::int64_t* routed_right);

// Perplexity of the model as used for inference, on plain text: the
// eval.ppl_text file (one text per line), else every task's test inputs.
double perplexity(RunContext& c);

}  // namespace sparc
