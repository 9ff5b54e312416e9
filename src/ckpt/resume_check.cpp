// Which config changes a resumed run accepts (SPEC 4).
#include <yaml-cpp/yaml.h>

#include <map>

#include "ckpt/checkpoint.h"

namespace sparc {
namespace {

// key.path -> scalar text, for every leaf of a YAML document (lists as flow text).
void flatten(const YAML::Node& node, const std::string& path, std::map<std::string, std::string>& out) {
  if (node.IsMap()) {
    for (const auto& kv : node)
      flatten(kv.second, path.empty() ? kv.first.Scalar() : path + "." + kv.first.Scalar(), out);
  } else {
    YAML::Emitter e;
    e << YAML::Flow << node;
    out[path] = e.c_str();
  }
}

// The settings that may change between a run and its resume, neutralised.
RunConfig comparable(RunConfig c) {
  c.train.log_every = TrainSection{}.log_every;
  c.comm = CommSection{};
  c.checkpoint = CheckpointSection{};
  c.model.path.clear();
  c.model.sharding = ModelSection{}.sharding;  // a memory layout, like the number of ranks
  // Memory against time, with the same bits in every mode.
  c.model.recompute = ModelSection{}.recompute;
  c.model.activation_budget_mb = ModelSection{}.activation_budget_mb;
  // Where it runs: a checkpoint written on the CPU resumes on a GPU and back
  // (checkpoints hold host copies; the trainer places them on the device).
  c.model.device = ModelSection{}.device;
  c.tasks.clear();
  return c;
}

}  // namespace

std::vector<std::string> resume_conflicts(const RunConfig& now, const RunConfig& then,
                                          std::size_t tasks_started) {
  std::vector<std::string> out;
  std::map<std::string, std::string> a, b;
  flatten(YAML::Load(to_yaml(comparable(now))), "", a);
  flatten(YAML::Load(to_yaml(comparable(then))), "", b);
  for (const auto& [key, value] : b) {
    if (key == "tasks") continue;
    auto it = a.find(key);
    const std::string current = it == a.end() ? "(absent)" : it->second;
    if (current != value)
      out.push_back(key + ": " + current + " now, " + value + " in the checkpoint");
  }
  const std::size_t n = std::max(now.tasks.size(), then.tasks.size());
  for (std::size_t i = 0; i < n; ++i) {
    const std::string where = "tasks[" + std::to_string(i) + "]";
    const bool done = i < tasks_started;
    if (i >= now.tasks.size()) {
      out.push_back(where + " ('" + then.tasks[i].name + "') is missing from the config");
    } else if (i >= then.tasks.size()) {
      out.push_back(where + " ('" + now.tasks[i].name +
                    "') is new: the checkpoint's sequence has " + std::to_string(then.tasks.size()) +
                    " tasks (start a new run to train a longer sequence)");
    } else if (!(now.tasks[i] == then.tasks[i])) {
      out.push_back(where + " ('" + then.tasks[i].name + "') differs from the checkpoint's" +
                    (done ? ": that part of the sequence is already done"
                          : ": its subspace and accuracies were already measured"));
    }
  }
  return out;
}

}  // namespace sparc
