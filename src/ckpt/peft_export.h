// Export of a trained task's adapters to the Hugging Face PEFT layout:
// adapter_config.json + adapter_model.safetensors per adapter.
//   prompt tuning (sparc, prompt): `prompt_embeddings` [P, D] (f32), peft_type PROMPT_TUNING
//   LoRA (lora, sparc+lora): `base_model.model.<HF module path>.lora_A.weight` [r, in] and
//     `.lora_B.weight` [out, r] (f32), peft_type LORA
// sparc+lora writes two adapters, OUT/prompt and OUT/lora (PEFT applies one
// adapter type per model); the other methods write OUT itself.
#pragma once

#include <string>
#include <vector>

#include "ckpt/checkpoint.h"

namespace sparc {

// The Hugging Face module path of a canonical LoRA site ("layers.3.q" ->
// "model.layers.3.self_attn.q_proj" for llama). Throws InputError for sites
// PEFT cannot express in that family (gpt2's fused q/k/v).
std::string hf_module_path(const std::string& arch, const std::string& site);

// Writes the adapters of `task` (a finished task of the checkpoint's
// library) under `out_dir`; returns the directories written.
std::vector<std::string> export_peft(const TrainingState& state, const std::string& task,
                                     const std::string& out_dir);

}  // namespace sparc
