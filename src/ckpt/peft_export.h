// Export of a trained task's adapters to the Hugging Face PEFT layout:
// adapter_config.json + adapter_model.safetensors per adapter.
//   prompt tuning (sparc, prompt): `prompt_embeddings` [P, D] (f32), peft_type PROMPT_TUNING
//   LoRA (lora, sparc+lora): `base_model.model.<HF module path>.lora_A.weight` [r, in] and
//     `.lora_B.weight` [out, r] (f32), peft_type LORA
// sparc+lora writes two adapters, OUT/prompt and OUT/lora (PEFT applies one
// adapter type per model); the other methods write OUT itself. gpt2's q, k,
// v adapters of a layer become one adapter on its fused c_attn (rank n * r,
// B block-diagonal, rank_pattern / alpha_pattern keep the scale alpha / r).
#pragma once

#include <string>
#include <vector>

#include "ckpt/checkpoint.h"

namespace sparc {

// The Hugging Face module path of a canonical LoRA site ("layers.3.q" ->
// "model.layers.3.self_attn.q_proj" for llama; gpt2's fused "layers.3.qkv"
// -> "transformer.h.3.attn.c_attn"). Throws InputError for sites the family
// does not have (gpt2's separate q, k, v).
std::string hf_module_path(const std::string& arch, const std::string& site);

// Writes the adapters of `task` (a finished task of the checkpoint's
// library) under `out_dir`; returns the directories written.
std::vector<std::string> export_peft(const TrainingState& state, const std::string& task,
                                     const std::string& out_dir);

}  // namespace sparc
