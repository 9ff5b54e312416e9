#include "train/results.h"

#include <nlohmann/json.hpp>

#include "core/file.h"
#include "core/storage.h"

namespace sparc {

void write_results_json(const std::string& path, const RunConfig& cfg, const RunResults& r,
                        const std::vector<TaskRecord>& library) {
  using nlohmann::json;
  json tasks = json::array(), reuse = json::array();
  for (const auto& t : cfg.tasks) tasks.push_back(t.name);
  for (const auto& e : library) {
    json sims = json::object();
    for (size_t j = 0; j < e.similarities.size(); ++j) sims[library[j].name] = e.similarities[j];
    reuse.push_back({{"task", e.name},
                     {"reused_from", e.reused_from >= 0 ? json(library[e.reused_from].name) : json()},
                     {"similarities", sims},
                     {"orthogonal_directions", e.orth_directions},
                     {"orthogonal_capped", e.orth_capped}});
  }
  const double T = double(cfg.tasks.size());
  // Methods whose trainable state is one set for the whole run count it once.
  const auto& traits = cfg.method_traits();
  const bool shared_state = traits.lora == LoraKind::kShared || traits.trains_weights;
  json out = {
      {"method", method_name(cfg.method)},
      {"setting", cfg.setting},
      {"tasks", tasks},
      {"accuracy_matrix", r.accuracy},
      {"test_sizes", r.test_sizes},
      {"zero_shot", r.zero_shot},
      {"acc", r.metrics.acc},
      {"bwt", r.metrics.bwt},
      {"fwt", r.metrics.fwt},
      {"forgetting", r.metrics.forgetting},
      {"forgetting_per_task", r.metrics.forgetting_per_task},
      {"retention", r.metrics.retention},
      {"trainable_params", r.trainable_params},
      {"trainable_params_total",
       shared_state ? r.trainable_params : std::int64_t(r.trainable_params * T)},
      {"model_params", r.model_params},
      {"trainable_fraction", double(r.trainable_params) / double(r.model_params)},
      {"reuse", reuse},
      {"routing_accuracy", r.routing_accuracy >= 0 ? json(r.routing_accuracy) : json()},
      {"ppl_before", r.ppl_before},
      {"ppl_after", r.ppl_after},
  };
  write_file(path, out.dump(2) + "\n");
}

}  // namespace sparc
