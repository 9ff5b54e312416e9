#include "ckpt/checkpoint.h"

// A checkpoint file's HDF5 layout (docs/checkpoint-format.md): TrainingState
// written as named datasets and attributes, and read back by name.
#include <H5Cpp.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <functional>

#include "ckpt/verify.h"
#include "core/error.h"
#include "core/fault.h"
#include "core/file.h"
#include "core/storage.h"

namespace sparc {
namespace {

// ---- HDF5 helpers: every value is a named dataset or attribute --------------

H5::StrType vlen_string() {
  H5::StrType t(H5::PredType::C_S1, H5T_VARIABLE);
  t.setCset(H5T_CSET_UTF8);
  return t;
}

H5::DataSpace scalar_space() { return H5::DataSpace(H5S_SCALAR); }

void attr(H5::H5Object& obj, const std::string& name, std::int64_t v) {
  obj.createAttribute(name, H5::PredType::NATIVE_INT64, scalar_space())
      .write(H5::PredType::NATIVE_INT64, &v);
}
void attr_u64(H5::H5Object& obj, const std::string& name, std::uint64_t v) {
  obj.createAttribute(name, H5::PredType::NATIVE_UINT64, scalar_space())
      .write(H5::PredType::NATIVE_UINT64, &v);
}
void attr(H5::H5Object& obj, const std::string& name, double v) {
  obj.createAttribute(name, H5::PredType::NATIVE_DOUBLE, scalar_space())
      .write(H5::PredType::NATIVE_DOUBLE, &v);
}
void attr(H5::H5Object& obj, const std::string& name, const std::string& v) {
  auto type = vlen_string();
  const char* p = v.c_str();
  obj.createAttribute(name, type, scalar_space()).write(type, &p);
}

void string_dataset(H5::Group& g, const std::string& name, const std::string& v) {
  auto type = vlen_string();
  const char* p = v.c_str();
  g.createDataSet(name, type, scalar_space()).write(&p, type);
}
void strings_dataset(H5::Group& g, const std::string& name, const std::vector<std::string>& v) {
  auto type = vlen_string();
  std::vector<const char*> ptrs;
  for (const auto& s : v) ptrs.push_back(s.c_str());
  hsize_t n = v.size();
  auto ds = g.createDataSet(name, type, H5::DataSpace(1, &n));
  if (n) ds.write(ptrs.data(), type);
}

void tensor_dataset(H5::Group& g, const std::string& name, const torch::Tensor& t) {
  if (!t.defined()) return;
  auto c = t.detach().to(torch::kCPU).contiguous();
  const H5::PredType* type = nullptr;
  switch (c.scalar_type()) {
    case torch::kFloat32: type = &H5::PredType::NATIVE_FLOAT; break;
    case torch::kFloat64: type = &H5::PredType::NATIVE_DOUBLE; break;
    case torch::kInt64: type = &H5::PredType::NATIVE_INT64; break;
    default:
      c = c.to(torch::kFloat32);
      type = &H5::PredType::NATIVE_FLOAT;
  }
  std::vector<hsize_t> dims(c.sizes().begin(), c.sizes().end());
  H5::DataSpace space = dims.empty() ? scalar_space() : H5::DataSpace(int(dims.size()), dims.data());
  auto ds = g.createDataSet(name, *type, space);
  if (c.numel() > 0) ds.write(c.data_ptr(), *type);
}

void doubles_dataset(H5::Group& g, const std::string& name, const std::vector<double>& v) {
  tensor_dataset(g, name, torch::tensor(v, torch::kFloat64).reshape({std::int64_t(v.size())}));
}

// Reading: errors name the file and the field.
struct Reader {
  std::string path;

  [[noreturn]] void missing(const std::string& what) const {
    throw InputError(path, "not a sparc checkpoint of format version " +
                               std::to_string(kCheckpointFormatVersion) + ": no '" + what + "'");
  }
  bool has(const H5::Group& g, const std::string& name) const {
    return H5Lexists(g.getId(), name.c_str(), H5P_DEFAULT) > 0;
  }
  H5::Group group(const H5::Group& g, const std::string& name) const {
    if (!has(g, name)) missing(name);
    return g.openGroup(name);
  }
  std::int64_t i64(const H5::H5Object& o, const std::string& name) const {
    if (!o.attrExists(name)) missing(name);
    std::int64_t v = 0;
    o.openAttribute(name).read(H5::PredType::NATIVE_INT64, &v);
    return v;
  }
  std::uint64_t u64(const H5::H5Object& o, const std::string& name) const {
    if (!o.attrExists(name)) missing(name);
    std::uint64_t v = 0;
    o.openAttribute(name).read(H5::PredType::NATIVE_UINT64, &v);
    return v;
  }
  double f64(const H5::H5Object& o, const std::string& name) const {
    if (!o.attrExists(name)) missing(name);
    double v = 0;
    o.openAttribute(name).read(H5::PredType::NATIVE_DOUBLE, &v);
    return v;
  }
  std::string str(const H5::H5Object& o, const std::string& name) const {
    if (!o.attrExists(name)) missing(name);
    auto a = o.openAttribute(name);
    std::string out;
    a.read(a.getStrType(), out);
    return out;
  }
  std::string string_dataset(const H5::Group& g, const std::string& name) const {
    if (!has(g, name)) missing(name);
    auto ds = g.openDataSet(name);
    std::string out;
    ds.read(out, ds.getStrType());
    return out;
  }
  std::vector<std::string> strings(const H5::Group& g, const std::string& name) const {
    if (!has(g, name)) missing(name);
    auto ds = g.openDataSet(name);
    hsize_t n = 0;
    ds.getSpace().getSimpleExtentDims(&n);
    std::vector<char*> ptrs(n, nullptr);
    auto type = vlen_string();
    if (n) ds.read(ptrs.data(), type);
    std::vector<std::string> out;
    for (char* p : ptrs) out.emplace_back(p ? p : "");
    if (n) {
      auto space = ds.getSpace();
      H5Dvlen_reclaim(type.getId(), space.getId(), H5P_DEFAULT, ptrs.data());
    }
    return out;
  }
  // Undefined when absent and optional.
  torch::Tensor tensor(const H5::Group& g, const std::string& name, bool required = false) const {
    if (!has(g, name)) {
      if (required) missing(name);
      return {};
    }
    auto ds = g.openDataSet(name);
    auto space = ds.getSpace();
    const int rank = space.getSimpleExtentNdims();
    std::vector<hsize_t> dims(rank);
    if (rank) space.getSimpleExtentDims(dims.data());
    std::vector<std::int64_t> shape(dims.begin(), dims.end());
    const H5T_class_t cls = ds.getTypeClass();
    torch::Tensor t;
    if (cls == H5T_INTEGER) {
      t = torch::empty(shape, torch::kInt64);
      if (t.numel()) ds.read(t.data_ptr(), H5::PredType::NATIVE_INT64);
    } else if (ds.getFloatType().getSize() == 8) {
      t = torch::empty(shape, torch::kFloat64);
      if (t.numel()) ds.read(t.data_ptr(), H5::PredType::NATIVE_DOUBLE);
    } else {
      t = torch::empty(shape, torch::kFloat32);
      if (t.numel()) ds.read(t.data_ptr(), H5::PredType::NATIVE_FLOAT);
    }
    return t;
  }
  // Child names in creation-independent (alphabetical) order.
  std::vector<std::string> children(const H5::Group& g) const {
    std::vector<std::string> out;
    for (hsize_t i = 0; i < g.getNumObjs(); ++i) out.push_back(g.getObjnameByIdx(i));
    return out;
  }
};

// ---- tasks ------------------------------------------------------------------

void write_lora(H5::Group& parent, const LoraSet& lora) {
  if (lora.empty()) return;
  auto g = parent.createGroup("lora");
  for (const auto& [m, ad] : lora) {
    auto mg = g.createGroup(m);
    tensor_dataset(mg, "A", ad->a);
    tensor_dataset(mg, "B", ad->b);
  }
}

// The factors alone: scale and dropout are the run config's (adopt_lora).
LoraSet read_lora(const Reader& r, const H5::Group& parent) {
  LoraSet out;
  if (!r.has(parent, "lora")) return out;
  auto g = parent.openGroup("lora");
  for (const auto& m : r.children(g)) {
    auto mg = g.openGroup(m);
    auto ad = std::make_shared<LoraAdapter>();
    ad->a = r.tensor(mg, "A", true);
    ad->b = r.tensor(mg, "B", true);
    out[m] = ad;
  }
  return out;
}

void write_subspace(H5::Group& g, const TaskRecord& t) {
  tensor_dataset(g, "mu", t.subspace.mu);
  tensor_dataset(g, "W", t.subspace.basis);
  tensor_dataset(g, "eigenvalues", t.subspace.eigenvalues);
  attr(g, "explained_variance_ratio", t.subspace.explained_variance_ratio);
}

void read_subspace(const Reader& r, const H5::Group& g, TaskRecord& t) {
  t.subspace.mu = r.tensor(g, "mu", true);
  t.subspace.basis = r.tensor(g, "W", true);
  t.subspace.eigenvalues = r.tensor(g, "eigenvalues", true);
  t.subspace.explained_variance_ratio = r.f64(g, "explained_variance_ratio");
}

void write_task(H5::Group& g, const TaskRecord& t, std::int64_t index,
                const std::vector<TaskRecord>& library) {
  attr(g, "name", t.name);
  attr(g, "index", index);
  write_subspace(g, t);
  tensor_dataset(g, "Z", t.z);
  tensor_dataset(g, "Z_init", t.z_init);
  tensor_dataset(g, "prompt", t.prompt);
  write_lora(g, t.lora);
  attr(g, "reused_from", t.reused_from >= 0 && size_t(t.reused_from) < library.size()
                             ? library[t.reused_from].name
                             : std::string());
  attr(g, "reused_from_index", std::int64_t(t.reused_from));
  doubles_dataset(g, "similarities", t.similarities);
  attr(g, "orthogonal_directions", t.orth_directions);
  attr(g, "orthogonal_capped", std::int64_t(t.orth_capped));
  attr(g, "orthogonal_residual", t.orth_residual);
}

TaskRecord read_task(const Reader& r, const H5::Group& g) {
  TaskRecord t;
  t.name = r.str(g, "name");
  read_subspace(r, g, t);
  t.z = r.tensor(g, "Z");
  t.z_init = r.tensor(g, "Z_init");
  t.prompt = r.tensor(g, "prompt");
  t.lora = read_lora(r, g);
  t.reused_from = int(r.i64(g, "reused_from_index"));
  auto sims = r.tensor(g, "similarities", true);
  for (std::int64_t i = 0; i < sims.numel(); ++i) t.similarities.push_back(sims[i].item<double>());
  t.orth_directions = r.i64(g, "orthogonal_directions");
  t.orth_capped = r.i64(g, "orthogonal_capped") != 0;
  t.orth_residual = r.f64(g, "orthogonal_residual");
  return t;
}


// The bytes of a file libhdf5 built in memory (the core driver).
std::vector<char> file_image(H5::H5File& f) {
  f.flush(H5F_SCOPE_GLOBAL);
  const ssize_t n = H5Fget_file_image(f.getId(), nullptr, 0);
  if (n < 0) throw H5::FileIException("H5Fget_file_image", "cannot get the size of the file image");
  std::vector<char> image(static_cast<size_t>(n));
  if (H5Fget_file_image(f.getId(), image.data(), image.size()) != n)
    throw H5::FileIException("H5Fget_file_image", "cannot copy the file image");
  return image;
}
}  // namespace

// ---- write / read -------------------------------------------------------------

void write_checkpoint_file(const std::string& path, const TrainingState& s,
                           const std::function<void()>& mid_write) {
  H5::Exception::dontPrint();
  // libhdf5 builds the file in memory and sparc writes its bytes: a write
  // that fails (disk full, read-only) is then an ordinary errno, where
  // libhdf5's own I/O errors leave objects it cannot close and end the
  // process in the library's exit handler. The cost: the checkpoint's size
  // in memory, twice for a moment (the image and its copy).
  std::vector<char> image;
  try {
    H5::FileAccPropList fapl;
    fapl.setCore(size_t(16) << 20, /*backing_store=*/false);
    H5::H5File f(path, H5F_ACC_TRUNC, H5::FileCreatPropList::DEFAULT, fapl);
    attr(f, "format", std::string("sparc-checkpoint"));
    attr(f, "format_version", std::int64_t(kCheckpointFormatVersion));
    attr(f, "sparc_version", std::string(SPARC_VERSION));
    attr(f, "world_size", s.world_size);
    attr(f, "method", s.method);
    attr(f, "setting", s.setting);
    string_dataset(f, "config", s.config_yaml);
    strings_dataset(f, "tasks", s.tasks);

    auto model = f.createGroup("model");
    attr_u64(model, "fingerprint", s.model_fingerprint);
    attr(model, "path", s.model_path);
    attr(model, "arch", s.arch);
    attr(model, "dim", s.dim);
    attr(model, "n_layers", s.n_layers);
    attr(model, "n_heads", s.n_heads);
    attr(model, "n_kv_heads", s.n_kv_heads);
    attr(model, "vocab_size", s.vocab_size);

    auto cursor = f.createGroup("cursor");
    attr(cursor, "task", s.task);
    attr(cursor, "in_task", std::int64_t(s.in_task));
    attr(cursor, "epoch", s.epoch);
    attr(cursor, "step_in_epoch", s.step_in_epoch);
    attr(cursor, "task_step", s.task_step);
    attr(cursor, "task_total_steps", s.task_total_steps);
    attr(cursor, "sample_offset", s.sample_offset);
    attr(cursor, "global_step", s.global_step);

    auto rng = f.createGroup("rng");
    attr_u64(rng, "seed", s.seed);
    attr(rng, "scheme", std::string("counter-based: key = splitmix64 hash of (seed, task, stream, "
                                    "step or epoch, global sample index); no generator state"));
    for (const auto& [name, key] : s.rng_streams) attr_u64(rng, "stream_" + name, key);

    auto subs = f.createGroup("subspaces");
    for (size_t i = 0; i < s.subspaces.size(); ++i) {
      auto g = subs.createGroup(s.subspaces[i].name);
      attr(g, "index", std::int64_t(i));
      write_subspace(g, s.subspaces[i]);
    }

    auto results = f.createGroup("results");
    doubles_dataset(results, "zero_shot", s.zero_shot);
    tensor_dataset(results, "test_sizes",
                   torch::tensor(s.test_sizes, torch::kInt64).reshape({std::int64_t(s.test_sizes.size())}));
    {
      const std::int64_t rows = std::int64_t(s.accuracy.size());
      const std::int64_t cols = std::int64_t(s.tasks.size());
      auto acc = torch::zeros({rows, cols}, torch::kFloat64);
      for (std::int64_t i = 0; i < rows; ++i)
        for (std::int64_t j = 0; j < cols && j < std::int64_t(s.accuracy[i].size()); ++j)
          acc[i][j] = s.accuracy[i][j];
      tensor_dataset(results, "accuracy", acc);
    }
    attr(results, "ppl_before", s.ppl_before);
    attr(results, "routed_right", s.routed_right);
    attr(results, "trainable_params", s.trainable_params);
    attr(results, "model_params", s.model_params);
    auto metrics = f.createGroup("metrics");
    strings_dataset(metrics, "history", s.metric_history);

    // Part of the file is on disk now: the fault-injection point.
    if (mid_write) {
      image = file_image(f);
      write_file(path, image.data(), image.size());
      mid_write();
    }

    auto lib = f.createGroup("library");
    for (size_t i = 0; i < s.library.size(); ++i) {
      auto g = lib.createGroup(s.library[i].name);
      write_task(g, s.library[i], std::int64_t(i), s.library);
    }
    if (s.in_task) {
      auto g = f.createGroup("current");
      write_task(g, s.current, s.task, s.library);
      auto opt = f.createGroup("optimizer");
      attr(opt, "type", std::string("adamw"));
      attr(opt, "schedule_position", s.task_step);
      auto params = opt.createGroup("params");
      for (size_t i = 0; i < s.params.size(); ++i) {
        auto pg = params.createGroup(s.params[i].name);
        attr(pg, "index", std::int64_t(i));
        attr(pg, "step", s.params[i].step);
        tensor_dataset(pg, "exp_avg", s.params[i].exp_avg);
        tensor_dataset(pg, "exp_avg_sq", s.params[i].exp_avg_sq);
        if (i < s.best_params.size()) tensor_dataset(pg, "early_stop_best", s.best_params[i]);
      }
      auto es = f.createGroup("early_stop");
      attr(es, "best_val", s.best_val);
      attr(es, "bad_epochs", s.bad_epochs);
      attr(es, "has_best", std::int64_t(!s.best_params.empty()));
    }
    if (!s.shared_lora.empty()) {
      auto g = f.createGroup("shared");
      write_lora(g, s.shared_lora);
    }
    if (!s.weights.empty()) {
      auto g = f.createGroup("weights");
      for (const auto& [name, t] : s.weights) tensor_dataset(g, name, t);
    }
    image = file_image(f);
    f.close();
  } catch (const H5::Exception& e) {
    throw StorageError(path + ": HDF5 could not build the checkpoint: " + e.getDetailMsg());
  }
  write_file(path, image.data(), image.size());
}

TrainingState read_checkpoint_file(const std::string& path) {
  H5::Exception::dontPrint();
  Reader r{path};
  TrainingState s;
  try {
    H5::H5File f(path, H5F_ACC_RDONLY);
    if (!f.attrExists("format") || r.str(f, "format") != "sparc-checkpoint")
      throw InputError(path, "not a sparc checkpoint (no format = sparc-checkpoint attribute)");
    const auto version = r.i64(f, "format_version");
    if (version != kCheckpointFormatVersion)
      throw InputError(path, "checkpoint format version " + std::to_string(version) +
                                 ", this sparc reads version " +
                                 std::to_string(kCheckpointFormatVersion));
    s.world_size = r.i64(f, "world_size");
    s.method = r.str(f, "method");
    s.setting = r.str(f, "setting");
    s.config_yaml = r.string_dataset(f, "config");
    s.tasks = r.strings(f, "tasks");

    auto model = r.group(f, "model");
    s.model_fingerprint = r.u64(model, "fingerprint");
    s.model_path = r.str(model, "path");
    s.arch = r.str(model, "arch");
    s.dim = r.i64(model, "dim");
    s.n_layers = r.i64(model, "n_layers");
    s.n_heads = r.i64(model, "n_heads");
    s.n_kv_heads = r.i64(model, "n_kv_heads");
    s.vocab_size = r.i64(model, "vocab_size");

    auto cursor = r.group(f, "cursor");
    s.task = r.i64(cursor, "task");
    s.in_task = r.i64(cursor, "in_task") != 0;
    s.epoch = r.i64(cursor, "epoch");
    s.step_in_epoch = r.i64(cursor, "step_in_epoch");
    s.task_step = r.i64(cursor, "task_step");
    s.task_total_steps = r.i64(cursor, "task_total_steps");
    s.sample_offset = r.i64(cursor, "sample_offset");
    s.global_step = r.i64(cursor, "global_step");

    auto rng = r.group(f, "rng");
    s.seed = r.u64(rng, "seed");
    for (int i = 0; i < rng.getNumAttrs(); ++i) {
      auto a = rng.openAttribute(unsigned(i));
      const std::string name = a.getName();
      if (name.rfind("stream_", 0) == 0) s.rng_streams[name.substr(7)] = r.u64(rng, name);
    }

    auto subs = r.group(f, "subspaces");
    s.subspaces.resize(s.tasks.size());
    for (size_t i = 0; i < s.tasks.size(); ++i) {
      auto g = r.group(subs, s.tasks[i]);
      s.subspaces[i].name = s.tasks[i];
      read_subspace(r, g, s.subspaces[i]);
    }

    auto results = r.group(f, "results");
    auto zs = r.tensor(results, "zero_shot", true);
    for (std::int64_t i = 0; i < zs.numel(); ++i) s.zero_shot.push_back(zs[i].item<double>());
    auto ts = r.tensor(results, "test_sizes", true);
    for (std::int64_t i = 0; i < ts.numel(); ++i) s.test_sizes.push_back(ts[i].item<std::int64_t>());
    auto acc = r.tensor(results, "accuracy", true);
    for (std::int64_t i = 0; i < acc.size(0); ++i) {
      std::vector<double> row;
      for (std::int64_t j = 0; j < acc.size(1); ++j) row.push_back(acc[i][j].item<double>());
      s.accuracy.push_back(row);
    }
    s.ppl_before = r.f64(results, "ppl_before");
    s.routed_right = r.i64(results, "routed_right");
    s.trainable_params = r.i64(results, "trainable_params");
    s.model_params = r.i64(results, "model_params");
    s.metric_history = r.strings(r.group(f, "metrics"), "history");

    auto lib = r.group(f, "library");
    std::vector<std::pair<std::int64_t, TaskRecord>> tasks;
    for (const auto& name : r.children(lib)) {
      auto g = lib.openGroup(name);
      tasks.emplace_back(r.i64(g, "index"), read_task(r, g));
    }
    std::sort(tasks.begin(), tasks.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    for (auto& [i, t] : tasks) s.library.push_back(std::move(t));

    if (s.in_task) {
      s.current = read_task(r, r.group(f, "current"));
      auto params = r.group(r.group(f, "optimizer"), "params");
      std::vector<std::pair<std::int64_t, CkptParam>> ps;
      std::vector<std::pair<std::int64_t, torch::Tensor>> best;
      for (const auto& name : r.children(params)) {
        auto g = params.openGroup(name);
        CkptParam p;
        p.name = name;
        p.step = r.i64(g, "step");
        p.exp_avg = r.tensor(g, "exp_avg");
        p.exp_avg_sq = r.tensor(g, "exp_avg_sq");
        const auto index = r.i64(g, "index");
        best.emplace_back(index, r.tensor(g, "early_stop_best"));
        ps.emplace_back(index, std::move(p));
      }
      std::sort(ps.begin(), ps.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
      std::sort(best.begin(), best.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
      for (auto& [i, p] : ps) s.params.push_back(std::move(p));
      auto es = r.group(f, "early_stop");
      s.best_val = r.f64(es, "best_val");
      s.bad_epochs = r.i64(es, "bad_epochs");
      if (r.i64(es, "has_best"))
        for (auto& [i, t] : best) {
          if (!t.defined()) r.missing("optimizer/params/*/early_stop_best");
          s.best_params.push_back(t);
        }
    }
    if (r.has(f, "shared")) s.shared_lora = read_lora(r, f.openGroup("shared"));
    if (r.has(f, "weights")) {
      auto g = f.openGroup("weights");
      for (const auto& name : r.children(g)) s.weights.emplace_back(name, r.tensor(g, name, true));
    }
  } catch (const H5::Exception& e) {
    throw InputError(path, "HDF5 read failed: " + e.getDetailMsg());
  }
  return s;
}

}  // namespace sparc
