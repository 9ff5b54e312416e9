#include "sparc/task_library.h"

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "data/jsonl_reader.h"
#include "formats/safetensors.h"

namespace sparc {

void save_library(const std::string& path, const std::vector<TaskRecord>& library,
                  const LoraSet& shared_lora,
                  const std::vector<std::pair<std::string, torch::Tensor>>& weights) {
  SafetensorsWriter w;
  auto add = [&](const std::string& name, const torch::Tensor& t) {
    if (!t.defined()) return;
    auto c = t.detach().to(torch::kCPU).contiguous();
    DType d = c.scalar_type() == torch::kFloat64 ? DType::F64 : DType::F32;
    c = c.to(d == DType::F64 ? torch::kFloat64 : torch::kFloat32);
    w.add(name, d, c.sizes().vec(), c.data_ptr(), size_t(c.numel()) * c.element_size());
  };
  nlohmann::json meta = nlohmann::json::array();
  for (size_t i = 0; i < library.size(); ++i) {
    const auto& e = library[i];
    const std::string p = "tasks." + std::to_string(i) + ".";
    add(p + "mu", e.subspace.mu);
    add(p + "basis", e.subspace.basis);
    add(p + "eigenvalues", e.subspace.eigenvalues);
    add(p + "z", e.z);
    add(p + "prompt", e.prompt);
    for (const auto& [m, a] : e.lora) add(p + "lora." + m + ".a", a->a), add(p + "lora." + m + ".b", a->b);
    meta.push_back({{"name", e.name}, {"reused_from", e.reused_from},
                    {"explained_variance_ratio", e.subspace.explained_variance_ratio}});
  }
  for (const auto& [m, a] : shared_lora) add("shared.lora." + m + ".a", a->a), add("shared.lora." + m + ".b", a->b);
  for (const auto& [name, t] : weights) add("weights." + name, t);
  w.set_metadata("library", meta.dump());
  w.write(path);
}

StoredLibrary load_library(const std::string& path, std::size_t expected_tasks,
                           const torch::Device& device, double lora_scale) {
  SafetensorsReader r(path);
  auto get = [&](const std::string& name) -> torch::Tensor {
    if (!r.contains(name)) return {};
    const auto& info = r.info(name);
    auto t = torch::empty(info.shape, info.dtype == DType::F64 ? torch::kFloat64 : torch::kFloat32);
    r.read(name, t.data_ptr());
    return t;
  };
  auto it = r.metadata().find("library");
  if (it == r.metadata().end()) throw InputError(path, "no 'library' metadata: not a sparc library");
  nlohmann::json meta;
  try {
    meta = nlohmann::json::parse(it->second);
    bool ok = meta.is_array();
    for (size_t i = 0; ok && i < meta.size(); ++i)
      ok = meta[i].is_object() && meta[i].value("name", nlohmann::json()).is_string() &&
           meta[i].value("reused_from", nlohmann::json()).is_number_integer() &&
           meta[i].value("explained_variance_ratio", nlohmann::json()).is_number();
    if (!ok)
      throw InputError(path, "'library' metadata is not an array of {name, reused_from, "
                             "explained_variance_ratio}: not a sparc library");
  } catch (const nlohmann::json::exception& e) {
    throw InputError(path, "'library' metadata: invalid JSON: " + json_error_text(e.what()));
  }
  if (meta.size() != expected_tasks)
    throw InputError(path, "holds " + std::to_string(meta.size()) + " tasks, the config has " +
                               std::to_string(expected_tasks));
  auto adapters = [&](const std::string& prefix) {
    LoraSet out;
    for (const auto& t : r.tensors()) {
      if (t.name.rfind(prefix, 0) != 0 || t.name.size() < 2 || t.name.compare(t.name.size() - 2, 2, ".a") != 0)
        continue;
      std::string m = t.name.substr(prefix.size(), t.name.size() - prefix.size() - 2);
      auto a = std::make_shared<LoraAdapter>();
      a->a = get(t.name).to(device);
      a->b = get(prefix + m + ".b").to(device);
      a->scale = lora_scale;
      out[m] = a;
    }
    return out;
  };
  StoredLibrary lib;
  for (size_t i = 0; i < meta.size(); ++i) {
    const std::string p = "tasks." + std::to_string(i) + ".";
    TaskRecord e;
    e.name = meta[i]["name"].get<std::string>();
    e.reused_from = meta[i]["reused_from"].get<int>();
    e.subspace.mu = get(p + "mu");
    e.subspace.basis = get(p + "basis");
    e.subspace.eigenvalues = get(p + "eigenvalues");
    e.subspace.explained_variance_ratio = meta[i]["explained_variance_ratio"].get<double>();
    e.z = get(p + "z");
    e.prompt = get(p + "prompt");
    e.lora = adapters(p + "lora.");
    lib.tasks.push_back(std::move(e));
  }
  lib.shared_lora = adapters("shared.lora.");
  const std::string weights = "weights.";
  for (const auto& t : r.tensors())
    if (t.name.rfind(weights, 0) == 0) lib.weights[t.name.substr(weights.size())] = get(t.name);
  return lib;
}

}  // namespace sparc
