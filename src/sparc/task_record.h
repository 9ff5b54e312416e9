// One task's stored state (SPEC 1, 4): the single schema that the running
// trainer, library.safetensors, the HDF5 checkpoint and the PEFT export all
// read and write. Each file format keeps its own key layout (the formats do
// not change); they differ only in which fields they hold, listed below.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "model/transformer.h"
#include "sparc/subspace.h"

namespace sparc {

// LoRA adapters by site, "layers.<i>.<target>". Shared pointers: the same
// adapter is installed into the model's Linear slots while it is in use.
using LoraSet = std::map<std::string, std::shared_ptr<LoraAdapter>>;

struct TaskRecord {
  std::string name;
  Subspace subspace;     // mu [D], basis W [k, D], eigenvalues [k] (f64), explained variance
  torch::Tensor z;       // subspace methods: [P, k] coefficients (f32); else undefined
  torch::Tensor z_init;  // the coefficients training started from (checkpoint only)
  torch::Tensor prompt;  // [P, D] prompt embeddings as fed to the model (f32); undefined: none
  LoraSet lora;          // adapters owned by this task (sparc+lora)
  int reused_from = -1;  // index of the task whose prompt initialised this one; -1: none
  std::vector<double> similarities;  // against each earlier task, at initialisation
  std::int64_t orth_directions = 0;  // stored directions removed by the orthogonal init
  bool orth_capped = false;          // the k - P capacity cap bound
  double orth_residual = 0;          // the overlap left when it did
};

// Which fields each format holds:
//   library.safetensors  name, subspace, z, prompt, lora, reused_from (+ explained variance)
//   HDF5 checkpoint      every field
//   PEFT export          prompt, lora

// Copies of saved adapters (a checkpoint's or a library file's factors) on
// `device`, with LoRA's scale alpha / r and dropout set; `trainable` makes
// the factors leaves that require gradients.
LoraSet adopt_lora(const LoraSet& saved, const torch::Device& device, double scale,
                   double dropout, bool trainable);

}  // namespace sparc
