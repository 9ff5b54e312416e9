#include "model/random_model.h"

#include "model/hf_model.h"
#include "model/weight_source.h"

namespace sparc {

void write_random_llama_directory(const ModelConfig& c, std::uint64_t seed,
                                  const std::string& dir, const std::string& dtype) {
  c.validate("random-model");
  auto gen = at::detail::createCPUGenerator(seed);
  // Drawn in f32 in expected_tensors' order, as random_weights draws them,
  // then stored in `dtype`: about 1.5x the largest tensor (the embedding) is
  // this command's peak.
  write_hf_llama_tensors(c, dir, dtype,
                         [&](const std::string& name, const std::vector<std::int64_t>& shape) {
                           return random_weight(name, shape, gen);
                         });
}

}  // namespace sparc
