// LoRA adapters on the frozen model (SPEC 1.5): creating a task's adapters,
// installing a set into the model's projections, and counting them.
#pragma once

#include <cstdint>
#include <string>

#include "config/run_config.h"
#include "model/transformer.h"
#include "sparc/task_record.h"

namespace sparc {

// The projection of a block that a LoRA target names (q, k, v, o, gate, up, down).
Linear& lora_site(Block& block, const std::string& target);

// Fresh adapters for task `task` on every block and target of `lora`: A
// uniform in +-1/sqrt(in) from a generator keyed by (seed, task, module), B
// zero; both leaves that require gradients.
LoraSet fresh_lora(Transformer& model, const LoraSection& lora, std::uint64_t seed,
                   std::uint64_t task);

// Puts `adapters` into the model's projections; sites absent from the set get none.
void install_lora(Transformer& model, const LoraSet& adapters);

// Trainable values of one adapter set: r (out + in) per site.
std::int64_t lora_parameter_count(Transformer& model, const LoraSection& lora);

}  // namespace sparc
