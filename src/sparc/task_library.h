// library.safetensors (docs/training.md): every finished task's record, the
// run's shared adapters (`lora`) and trained weights (`full`), with the
// decisions as JSON metadata. Keys: tasks.<i>.{mu,basis,eigenvalues,z,
// prompt,lora.<site>.{a,b}}, shared.lora.<site>.{a,b}, weights.<canonical>;
// metadata "library": [{name, reused_from, explained_variance_ratio}].
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "sparc/task_record.h"

namespace sparc {

struct StoredLibrary {
  std::vector<TaskRecord> tasks;
  LoraSet shared_lora;
  std::map<std::string, torch::Tensor> weights;  // canonical name -> tensor (full)
};

// Writes the library; InputError (naming the file and errno) when it cannot.
void save_library(const std::string& path, const std::vector<TaskRecord>& tasks,
                  const LoraSet& shared_lora,
                  const std::vector<std::pair<std::string, torch::Tensor>>& weights);

// Reads a library of `expected_tasks` tasks; adapters go to `device` with
// scale `lora_scale`. InputError naming the file when it is not a sparc
// library or holds another number of tasks.
StoredLibrary load_library(const std::string& path, std::size_t expected_tasks,
                           const torch::Device& device, double lora_scale);

}  // namespace sparc
