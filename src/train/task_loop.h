// The task loop: one task's optimizer steps over its epochs (schedule,
// data-parallel micro-batches, gradient all-reduce, non-finite steps
// skipped, early stopping on validation accuracy, fault points), with
// progress lines, metrics.jsonl and the in-task checkpoints.
#pragma once

#include <cstddef>

#include "train/run_context.h"

namespace sparc {

// Trains `record` (task `t`'s parameters, as the method set them up) in
// place; on return the method has frozen what it trained. Continues from
// c.resumed when it holds an interrupted state of this task.
void train_task(RunContext& c, std::size_t t, TaskRecord& record);

}  // namespace sparc
