#include "report/run_data.h"

#include <yaml-cpp/yaml.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "core/file.h"

namespace sparc::report {
namespace {

using nlohmann::json;

// results.json field access: every error names the file and the field.
class Fields {
 public:
  Fields(const json& root, const std::string& where) : root_(root), where_(where) {}

  const json& required(const std::string& key) const {
    auto it = root_.find(key);
    if (it == root_.end()) throw InputError(where_, "missing field '" + key + "'");
    return *it;
  }
  const json* optional(const std::string& key) const {
    auto it = root_.find(key);
    return it == root_.end() || it->is_null() ? nullptr : &*it;
  }
  std::string string(const std::string& key) const {
    const json& v = required(key);
    if (!v.is_string()) throw bad(key, "a string");
    return v.get<std::string>();
  }
  // A number; null (how the trainer writes NaN) reads as missing.
  double number(const json& v, const std::string& field) const {
    if (v.is_null()) return kMissing;
    if (!v.is_number()) throw bad(field, "a number");
    return v.get<double>();
  }
  double number(const std::string& key, bool needed) const {
    if (needed) return number(required(key), key);
    const json* v = optional(key);
    return v ? number(*v, key) : kMissing;
  }
  std::int64_t integer(const std::string& key) const {
    const json* v = optional(key);
    if (!v) return -1;
    if (!v->is_number_integer()) throw bad(key, "an integer");
    return v->get<std::int64_t>();
  }
  std::vector<double> numbers(const json& v, const std::string& field) const {
    if (!v.is_array()) throw bad(field, "an array of numbers");
    std::vector<double> out;
    for (size_t i = 0; i < v.size(); ++i)
      out.push_back(number(v[i], field + "[" + std::to_string(i) + "]"));
    return out;
  }
  std::vector<double> numbers(const std::string& key, size_t size) const {
    const json* v = optional(key);
    if (!v) return {};
    auto out = numbers(*v, key);
    if (out.size() != size)
      throw InputError(where_, "field '" + key + "' has " + std::to_string(out.size()) +
                                   " entries, expected one per task (" + std::to_string(size) +
                                   ")");
    return out;
  }
  InputError bad(const std::string& field, const std::string& expected) const {
    return InputError(where_, "field '" + field + "' is not " + expected);
  }

 private:
  const json& root_;
  std::string where_;
};

}  // namespace

void parse_results_json(const std::string& text, const std::string& where, RunData& run) {
  json root;
  try {
    root = json::parse(text);
  } catch (const json::parse_error& e) {
    throw InputError(where, std::string("not valid JSON: ") + e.what());
  }
  if (!root.is_object()) throw InputError(where, "not a JSON object");
  Fields f(root, where);
  run.method = f.string("method");
  run.setting = f.string("setting");

  const json& tasks = f.required("tasks");
  if (!tasks.is_array() || tasks.empty()) throw f.bad("tasks", "a non-empty array of names");
  for (const auto& t : tasks) {
    if (!t.is_string()) throw f.bad("tasks", "an array of strings");
    run.tasks.push_back(t.get<std::string>());
  }
  const size_t T = run.tasks.size();

  // The trainer writes the full T x T matrix; `sparc eval`-style partial
  // matrices (fewer rows) are accepted, rows never longer than T.
  const json& matrix = f.required("accuracy_matrix");
  if (!matrix.is_array() || matrix.empty() || matrix.size() > T)
    throw f.bad("accuracy_matrix", "an array of 1 to " + std::to_string(T) + " rows");
  for (size_t i = 0; i < matrix.size(); ++i) {
    const std::string field = "accuracy_matrix[" + std::to_string(i) + "]";
    run.accuracy.push_back(f.numbers(matrix[i], field));
    if (run.accuracy.back().size() != T)
      throw InputError(where, "field '" + field + "' has " +
                                  std::to_string(run.accuracy.back().size()) +
                                  " entries, expected one per task (" + std::to_string(T) + ")");
  }
  run.zero_shot = f.numbers("zero_shot", T);
  if (const json* sizes = f.optional("test_sizes")) {
    if (!sizes->is_array() || sizes->size() != T) throw f.bad("test_sizes", "one integer per task");
    for (const auto& n : *sizes) {
      if (!n.is_number_integer()) throw f.bad("test_sizes", "an array of integers");
      run.test_sizes.push_back(n.get<std::int64_t>());
    }
  }
  run.acc = f.number("acc", true);
  run.bwt = f.number("bwt", true);
  run.fwt = f.number("fwt", false);
  run.forgetting = f.number("forgetting", true);
  run.forgetting_per_task = f.numbers("forgetting_per_task", T);
  run.retention = f.numbers("retention", T);
  run.trainable_params = f.integer("trainable_params");
  run.trainable_params_total = f.integer("trainable_params_total");
  run.model_params = f.integer("model_params");
  run.trainable_fraction = f.number("trainable_fraction", false);
  run.routing_accuracy = f.number("routing_accuracy", false);
  run.ppl_before = f.number("ppl_before", false);
  run.ppl_after = f.number("ppl_after", false);

  if (const json* reuse = f.optional("reuse")) {
    if (!reuse->is_array()) throw f.bad("reuse", "an array");
    for (size_t i = 0; i < reuse->size(); ++i) {
      const std::string field = "reuse[" + std::to_string(i) + "]";
      const json& e = (*reuse)[i];
      if (!e.is_object()) throw f.bad(field, "an object");
      Fields g(e, where);
      ReuseDecision d;
      const json& task = e.contains("task") ? e["task"] : json();
      if (!task.is_string()) throw f.bad(field + ".task", "a string");
      d.task = task.get<std::string>();
      if (e.contains("reused_from") && !e["reused_from"].is_null()) {
        if (!e["reused_from"].is_string()) throw f.bad(field + ".reused_from", "a string or null");
        d.reused_from = e["reused_from"].get<std::string>();
      }
      if (const json* sims = g.optional("similarities")) {
        if (!sims->is_object()) throw f.bad(field + ".similarities", "an object");
        // Keep the task order of the run, not nlohmann's key order.
        for (const auto& name : run.tasks) {
          auto it = sims->find(name);
          if (it != sims->end())
            d.similarities.emplace_back(name, f.number(*it, field + ".similarities." + name));
        }
      }
      if (const json* n = g.optional("orthogonal_directions")) {
        if (!n->is_number_integer()) throw f.bad(field + ".orthogonal_directions", "an integer");
        d.orthogonal_directions = n->get<std::int64_t>();
      }
      if (const json* c = g.optional("orthogonal_capped")) {
        if (!c->is_boolean()) throw f.bad(field + ".orthogonal_capped", "a boolean");
        d.orthogonal_capped = c->get<bool>();
      }
      run.reuse.push_back(std::move(d));
    }
  }
}

void parse_metrics_jsonl(const std::string& text, const std::string& where, RunData& run) {
  std::istringstream in(text);
  std::string line;
  std::map<std::string, double> last_tps;
  std::vector<std::string> order;
  size_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string at = where + ":" + std::to_string(line_no);
    json j;
    try {
      j = json::parse(line);
    } catch (const json::parse_error& e) {
      throw InputError(at, std::string("not valid JSON: ") + e.what());
    }
    if (!j.is_object()) throw InputError(at, "not a JSON object");
    auto task = j.find("task"), step = j.find("step"), loss = j.find("loss");
    if (task == j.end() || !task->is_string()) throw InputError(at, "field 'task' is not a string");
    if (step == j.end() || !step->is_number_integer())
      throw InputError(at, "field 'step' is not an integer");
    if (loss == j.end() || !(loss->is_number() || loss->is_null()))
      throw InputError(at, "field 'loss' is not a number");
    const std::string name = task->get<std::string>();
    auto curve = run.loss_curves.begin();
    while (curve != run.loss_curves.end() && curve->first != name) ++curve;
    if (curve == run.loss_curves.end()) {
      run.loss_curves.emplace_back(name, std::vector<LossPoint>{});
      curve = std::prev(run.loss_curves.end());
    }
    if (!loss->is_null()) curve->second.push_back({step->get<std::int64_t>(), loss->get<double>()});
    auto tps = j.find("tokens_per_s");
    if (tps != j.end() && !tps->is_null()) {
      if (!tps->is_number()) throw InputError(at, "field 'tokens_per_s' is not a number");
      last_tps[name] = tps->get<double>();
    }
  }
  run.has_metrics = true;
  if (!last_tps.empty()) {
    double sum = 0;
    for (const auto& [name, v] : last_tps) sum += v;
    run.tokens_per_s = sum / double(last_tps.size());
  }
}

RunData load_run(const std::string& dir) {
  if (!is_directory(dir)) throw InputError(dir, "not a run directory (does not exist)");
  RunData run;
  run.dir = dir;
  const std::string results = dir + "/results.json";
  if (!file_exists(results))
    throw InputError(results, "missing: not a finished `sparc train` run directory");
  parse_results_json(read_text_file(results), results, run);

  const std::string metrics = dir + "/metrics.jsonl";
  if (file_exists(metrics)) parse_metrics_jsonl(read_text_file(metrics), metrics, run);

  // The reuse threshold only annotates the similarity table: a config that
  // does not parse is not worth failing the report for.
  const std::string config = dir + "/config.yaml";
  if (file_exists(config)) {
    try {
      YAML::Node c = YAML::LoadFile(config);
      if (c["reuse_threshold"]) run.reuse_threshold = c["reuse_threshold"].as<double>();
    } catch (const YAML::Exception&) {
    }
  }
  return run;
}

}  // namespace sparc::report
