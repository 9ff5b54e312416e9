#include "config/run_config.h"

#include <algorithm>
#include <filesystem>
#include <tuple>

#include "config/yaml_reader.h"
#include "core/file.h"

namespace sparc {

using namespace yaml_reader;

namespace {

const std::vector<std::string> kSettings = {"task-incremental", "domain-incremental"};
const std::vector<std::string> kFormats = {"generic", "boolq", "cb",  "rte",
                                           "copa",    "wic",   "wsc", "multirc"};
const std::vector<std::string> kDtypes = {"f32", "f16", "bf16"};
const std::vector<std::string> kShardings = {"none", "layer"};
const std::vector<std::string> kRecomputes = {"auto", "always", "never"};
const std::vector<std::string> kCommBackends = {"auto", "mpi", "nccl"};
const std::vector<std::string> kOnWriteError = {"stop", "continue"};
const std::vector<std::string> kLoraTargets = {"q", "k", "v", "o", "gate", "up", "down"};

// The method by name; a bad name is reported and the default kept.
void read_method(Section& s, MethodId& out) {
  std::vector<std::string> names;
  for (const auto& m : all_methods()) names.emplace_back(m.name);
  std::string name = method_name(out);
  s.read_choice("method", name, names);
  parse_method_name(name, &out);  // read_choice keeps `name` one of `names`
}

void read_model(Section s, ModelSection& m) {
  s.require("path", m.path, "the model (a Hugging Face directory or a llama2.c .bin file)");
  s.read("tokenizer", m.tokenizer);
  s.read_choice("dtype", m.dtype, kDtypes);
  std::string device;
  if (s.read("device", device)) {
    std::size_t ordinal = 0;
    bool ok = device == "cpu" || device == "cuda" || device == "auto" ||
              (device.rfind("cuda:", 0) == 0 && parse_number(device.substr(5), ordinal));
    if (ok)
      m.device = device;
    else
      s.fail("device", "expected cpu, cuda, cuda:N or auto; got '" + device + "'");
  }
  s.read_choice("sharding", m.sharding, kShardings);
  s.read_choice("recompute", m.recompute, kRecomputes);
  s.read("activation_budget_mb", m.activation_budget_mb, std::int64_t{0});
}

void read_pca(Section s, PcaSection& p) {
  s.read("k", p.k, 1);
  s.read("max_tokens", p.max_tokens, std::int64_t{0});
  std::string source;
  if (!s.read("source", source)) return;
  int layer = -1;
  if (source == "embedding" || source == "mean") {
    p.source = source;
    p.hidden_layer = -1;
  } else if (source.rfind("hidden:", 0) == 0 && parse_number(source.substr(7), layer) &&
             layer >= 0) {
    p.source = "hidden";
    p.hidden_layer = layer;
  } else {
    s.fail("source",
           "expected embedding, mean or hidden:<layer> (layer >= 0); got '" + source + "'");
  }
}

void read_lora(Section s, LoraSection& l, Problems& problems) {
  s.read("rank", l.rank, 1);
  s.read("alpha", l.alpha, kPositive);
  s.read("dropout", l.dropout, kUnitHalfOpen);
  s.read("lr", l.lr, kNonNegative);
  YAML::Node targets = s.get("targets");
  if (!targets.IsDefined()) return;
  const std::string path = s.path_of("targets");
  if (targets.IsNull()) {
    l.targets.clear();
    return;
  }
  if (!targets.IsSequence()) {
    problems.add(targets, path, "expected a list such as [q, v], got " + describe(targets));
    return;
  }
  std::vector<std::string> list;
  bool ok = true;
  for (std::size_t i = 0; i < targets.size(); ++i) {
    const YAML::Node t = targets[i];
    const std::string item = path + "[" + std::to_string(i) + "]";
    if (!t.IsScalar() || !contains(kLoraTargets, t.Scalar())) {
      problems.add(t, item,
                   "expected one of " + join(kLoraTargets, ", ") + "; got " + describe(t) +
                       (t.IsScalar() ? did_you_mean(t.Scalar(), kLoraTargets) : ""));
      ok = false;
    } else if (contains(list, t.Scalar())) {
      problems.add(t, item, "'" + t.Scalar() + "' is listed twice");
      ok = false;
    } else {
      list.push_back(t.Scalar());
    }
  }
  if (ok) l.targets = list;
}

void read_train(Section s, TrainSection& t) {
  s.read("epochs", t.epochs, 1);
  s.read("batch_size", t.batch_size, 1);
  s.read("grad_accum", t.grad_accum, 1);
  s.read("lr", t.lr, kPositive);
  s.read("weight_decay", t.weight_decay, kNonNegative);
  s.read("warmup_steps", t.warmup_steps, 0);
  s.read_choice("schedule", t.schedule, kSchedules);
  s.read("max_grad_norm", t.max_grad_norm, kNonNegative);
  s.read("max_length", t.max_length, 1);
  s.read("early_stop_patience", t.early_stop_patience, 0);
  s.read("log_every", t.log_every, 1);
  s.read("lambda_orth", t.lambda_orth, kNonNegative);
  s.read("val_fraction", t.val_fraction, kUnitHalfOpen);
  s.read("max_train_examples", t.max_train_examples, 0);
  s.read("max_bad_steps", t.max_bad_steps, 1);
  s.read("deterministic", t.deterministic);
  s.read("unit_size", t.unit_size, 1);
}

void read_verbalizer(Section& s, TaskSpec& task, Problems& problems) {
  const std::string path = s.path_of("verbalizer");
  Section v(problems, s.get("verbalizer"), path, {});
  if (!s.has("verbalizer")) {
    s.fail("verbalizer", "required: a map of label value -> label word, one per class");
    return;
  }
  if (!v.node().IsMap()) {
    if (v.node().IsNull())
      s.fail("verbalizer", "expected at least 2 classes (label: word), got none");
    return;  // a non-map was reported by Section
  }
  std::vector<std::pair<std::string, std::string>> classes;
  for (const auto& [label, word_node] : v.entries()) {
    const std::string item = v.path_of(label);
    if (!word_node.IsScalar() || word_node.Scalar().empty()) {
      problems.add(word_node, item, "expected a non-empty label word, got " + describe(word_node));
      continue;
    }
    const std::string& word = word_node.Scalar();
    auto same = std::find_if(classes.begin(), classes.end(),
                             [&](const auto& c) { return c.second == word; });
    if (same != classes.end()) {
      problems.add(word_node, path,
                   "labels '" + same->first + "' and '" + label + "' have the same word '" + word +
                       "'; their classes could not be told apart");
      continue;
    }
    classes.emplace_back(label, word);
  }
  if (v.entries().size() < 2)
    problems.add(
        v.node(), path,
        "expected at least 2 classes (label: word), got " + std::to_string(v.entries().size()));
  task.verbalizer = classes;
}

void read_tasks(const YAML::Node& node, std::vector<TaskSpec>& tasks, Problems& problems) {
  if (!node.IsDefined() || node.IsNull() || (node.IsSequence() && node.size() == 0)) {
    problems.add(node, "tasks", "at least one task is required");
    return;
  }
  if (!node.IsSequence()) {
    problems.add(node, "tasks", "expected a list of tasks, got " + describe(node));
    return;
  }
  for (std::size_t i = 0; i < node.size(); ++i) {
    const std::string path = "tasks[" + std::to_string(i) + "]";
    Section s(problems, node[i], path,
              {"name", "format", "train", "validation", "test", "template", "verbalizer",
               "truncate_field"});
    TaskSpec task;
    if (!node[i].IsMap() && !node[i].IsNull()) {  // reported by Section
      tasks.push_back(task);  // keeps tasks[i] aligned with the YAML list for later messages
      continue;
    }
    s.require("name", task.name, "a unique task name");
    if (task.name.find('/') != std::string::npos)
      s.fail("name", "'" + task.name + "' contains '/'; the name is an HDF5 group in checkpoints");
    for (std::size_t j = 0; j < tasks.size(); ++j)
      if (!task.name.empty() && tasks[j].name == task.name)
        s.fail("name",
               "duplicate task name '" + task.name + "' (also tasks[" + std::to_string(j) + "])");
    s.read_choice("format", task.format, kFormats);
    s.require("train", task.train, "the training data file (JSON Lines)");
    s.read("validation", task.validation);
    s.require("test", task.test, "the test data file (JSON Lines)");
    s.read("template", task.template_text);
    if (task.template_text.empty()) s.fail("template", "expected a non-empty template");
    s.read("truncate_field", task.truncate_field);
    read_verbalizer(s, task, problems);
    tasks.push_back(task);
  }
}

// Checks between settings, once each value has been read.
void check_combinations(const RunConfig& c, const Section& top, Problems& problems) {
  auto node_at = [&](const char* section, const char* key) {
    const YAML::Node s = top.get(section);
    return s.IsMap() && s[key].IsDefined() ? s[key] : s;
  };
  const std::string& method = method_name(c.method);
  if (c.uses_subspace() && c.pca.k < c.prompt.length)
    problems.add(node_at("pca", "k"), "pca.k",
                 "must be >= prompt.length (" + std::to_string(c.prompt.length) + ") for method '" +
                     method + "': the prompt's directions live in the k-dimensional subspace");
  if (c.uses_lora() && c.lora.targets.empty())
    problems.add(node_at("lora", "targets"), "lora.targets",
                 "method '" + method + "' needs at least one LoRA target");
  if (!c.uses_subspace() && c.train.lambda_orth > 0)
    problems.add(node_at("train", "lambda_orth"), "train.lambda_orth",
                 "only the sparc methods use it (method is '" + method + "')");
  if (c.train.early_stop_patience > 0 && c.train.val_fraction == 0)
    for (std::size_t i = 0; i < c.tasks.size(); ++i)
      if (c.tasks[i].validation.empty()) {
        problems.add(node_at("train", "early_stop_patience"), "train.early_stop_patience",
                     "needs validation data, but tasks[" + std::to_string(i) +
                         "] has no validation file and train.val_fraction is 0");
        break;
      }
  if (c.setting == "domain-incremental" && !c.tasks.empty()) {
    // Routing picks a task per example, so every task must classify into the same classes.
    auto labels = [](const TaskSpec& t) {
      std::vector<std::string> l;
      for (const auto& [label, word] : t.verbalizer) l.push_back(label);
      return l;
    };
    // Tasks whose verbalizer was already reported as too small are left out.
    const YAML::Node tasks = top.get("tasks");
    const TaskSpec* first = nullptr;
    std::size_t first_index = 0;
    for (std::size_t i = 0; i < c.tasks.size(); ++i) {
      if (c.tasks[i].verbalizer.size() < 2) continue;
      if (!first) {
        first = &c.tasks[i], first_index = i;
      } else if (labels(c.tasks[i]) != labels(*first)) {
        problems.add(tasks[i]["verbalizer"], "tasks[" + std::to_string(i) + "].verbalizer",
                     "domain-incremental tasks share one label set: expected labels [" +
                         join(labels(*first), ", ") + "] as in tasks[" +
                         std::to_string(first_index) + "], got [" + join(labels(c.tasks[i]), ", ") +
                         "]");
      }
    }
  }
}

void resolve_paths(RunConfig& c, const std::string& base_dir, const Problems& problems) {
  auto resolve = [&](std::string& p, const std::string& key) {
    resolve_path(p, key, base_dir, problems);
  };
  resolve(c.model.path, "model.path");
  if (c.model.tokenizer != "bytes") resolve(c.model.tokenizer, "model.tokenizer");
  resolve(c.eval.ppl_text, "eval.ppl_text");
  resolve(c.checkpoint.dir, "checkpoint.dir");
  for (std::size_t i = 0; i < c.tasks.size(); ++i) {
    const std::string t = "tasks[" + std::to_string(i) + "].";
    resolve(c.tasks[i].train, t + "train");
    resolve(c.tasks[i].validation, t + "validation");
    resolve(c.tasks[i].test, t + "test");
  }
}

}  // namespace

RunConfig parse_run_config(const std::string& yaml_text, const std::string& where,
                           const std::string& base_dir, const std::vector<std::string>& overrides) {
  Problems problems(where);
  YAML::Node root = load_document(yaml_text, overrides, problems);

  RunConfig c;
  c.source_path = where;
  Section top(problems, root, "",
              {"method", "setting", "seed", "reuse_threshold", "model", "prompt", "pca", "lora",
               "train", "eval", "comm", "checkpoint", "tasks"});
  read_method(top, c.method);
  top.read_choice("setting", c.setting, kSettings);
  top.read("seed", c.seed, std::uint64_t{0});
  top.read("reuse_threshold", c.reuse_threshold, kUnitClosed);

  Section model(problems, top.get("model"), "model",
                {"path", "tokenizer", "dtype", "device", "sharding", "recompute",
                 "activation_budget_mb"});
  read_model(model, c.model);
  if (c.trains_weights() && c.model.sharding == "layer")
    model.fail("sharding", "method full trains the weights themselves and cannot shard them; "
                           "use sharding: none (the baseline is plain data parallel)");
  Section(problems, top.get("prompt"), "prompt", {"length"}).read("length", c.prompt.length, 1);
  read_pca(Section(problems, top.get("pca"), "pca", {"k", "source", "max_tokens"}), c.pca);
  read_lora(
      Section(problems, top.get("lora"), "lora", {"rank", "alpha", "dropout", "targets", "lr"}),
      c.lora, problems);
  read_train(Section(problems, top.get("train"), "train",
                     {"epochs", "batch_size", "grad_accum", "lr", "weight_decay", "warmup_steps",
                      "schedule", "max_grad_norm", "max_length", "early_stop_patience", "log_every",
                      "lambda_orth", "val_fraction", "max_train_examples", "max_bad_steps",
                      "deterministic", "unit_size"}),
             c.train);
  Section eval(problems, top.get("eval"), "eval", {"batch_size", "ppl_text", "max_examples"});
  eval.read("batch_size", c.eval.batch_size, 1);
  eval.read("ppl_text", c.eval.ppl_text);
  eval.read("max_examples", c.eval.max_examples, 0);
  Section comm(problems, top.get("comm"), "comm", {"backend", "timeout_s"});
  comm.read_choice("backend", c.comm.backend, kCommBackends);
  comm.read("timeout_s", c.comm.timeout_s, kNonNegative);
  Section ckpt(problems, top.get("checkpoint"), "checkpoint",
               {"dir", "every_steps", "keep", "on_write_error"});
  ckpt.read("dir", c.checkpoint.dir);
  ckpt.read("every_steps", c.checkpoint.every_steps, 0);
  ckpt.read("keep", c.checkpoint.keep, 1);
  ckpt.read_choice("on_write_error", c.checkpoint.on_write_error, kOnWriteError);
  read_tasks(top.get("tasks"), c.tasks, problems);
  check_combinations(c, top, problems);

  problems.throw_if_any();
  resolve_paths(c, base_dir, problems);
  return c;
}

RunConfig load_run_config(const std::string& path, const std::vector<std::string>& overrides) {
  const std::string text = read_text_file(path);
  const auto dir = std::filesystem::absolute(path).parent_path().lexically_normal();
  return parse_run_config(text, path, dir.string(), overrides);
}

std::string to_yaml(const RunConfig& c) {
  YAML::Emitter out;
  // Strings are always quoted so that values such as "yes", "1" or "{text}"
  // read back as the same strings.
  auto str = [&](const char* key, const std::string& v) {
    out << YAML::Key << key << YAML::Value << YAML::DoubleQuoted << v;
  };
  auto num = [&](const char* key, double v) {
    out << YAML::Key << key << YAML::Value << format_double(v);
  };
  auto integer = [&](const char* key, auto v) { out << YAML::Key << key << YAML::Value << v; };
  auto begin = [&](const char* key) { out << YAML::Key << key << YAML::Value << YAML::BeginMap; };

  out << YAML::BeginMap;
  str("method", method_name(c.method));
  str("setting", c.setting);
  integer("seed", c.seed);
  num("reuse_threshold", c.reuse_threshold);
  begin("model");
  str("path", c.model.path);
  str("tokenizer", c.model.tokenizer);
  str("dtype", c.model.dtype);
  str("device", c.model.device);
  str("sharding", c.model.sharding);
  str("recompute", c.model.recompute);
  integer("activation_budget_mb", c.model.activation_budget_mb);
  out << YAML::EndMap;
  begin("prompt");
  integer("length", c.prompt.length);
  out << YAML::EndMap;
  begin("pca");
  integer("k", c.pca.k);
  str("source",
      c.pca.source == "hidden" ? "hidden:" + std::to_string(c.pca.hidden_layer) : c.pca.source);
  integer("max_tokens", c.pca.max_tokens);
  out << YAML::EndMap;
  begin("lora");
  integer("rank", c.lora.rank);
  num("alpha", c.lora.alpha);
  num("dropout", c.lora.dropout);
  out << YAML::Key << "targets" << YAML::Value << YAML::Flow << YAML::BeginSeq;
  for (const auto& t : c.lora.targets) out << YAML::DoubleQuoted << t;
  out << YAML::EndSeq;
  num("lr", c.lora.lr);
  out << YAML::EndMap;
  begin("train");
  const TrainSection& t = c.train;
  integer("epochs", t.epochs);
  integer("batch_size", t.batch_size);
  integer("grad_accum", t.grad_accum);
  num("lr", t.lr);
  num("weight_decay", t.weight_decay);
  integer("warmup_steps", t.warmup_steps);
  str("schedule", t.schedule);
  num("max_grad_norm", t.max_grad_norm);
  integer("max_length", t.max_length);
  integer("early_stop_patience", t.early_stop_patience);
  integer("log_every", t.log_every);
  num("lambda_orth", t.lambda_orth);
  num("val_fraction", t.val_fraction);
  integer("max_train_examples", t.max_train_examples);
  integer("max_bad_steps", t.max_bad_steps);
  out << YAML::Key << "deterministic" << YAML::Value << t.deterministic;
  integer("unit_size", t.unit_size);
  out << YAML::EndMap;
  begin("eval");
  integer("batch_size", c.eval.batch_size);
  str("ppl_text", c.eval.ppl_text);
  integer("max_examples", c.eval.max_examples);
  out << YAML::EndMap;
  begin("comm");
  str("backend", c.comm.backend);
  num("timeout_s", c.comm.timeout_s);
  out << YAML::EndMap;
  begin("checkpoint");
  str("dir", c.checkpoint.dir);
  integer("every_steps", c.checkpoint.every_steps);
  integer("keep", c.checkpoint.keep);
  str("on_write_error", c.checkpoint.on_write_error);
  out << YAML::EndMap;
  out << YAML::Key << "tasks" << YAML::Value << YAML::BeginSeq;
  for (const auto& task : c.tasks) {
    out << YAML::BeginMap;
    str("name", task.name);
    str("format", task.format);
    str("train", task.train);
    str("validation", task.validation);
    str("test", task.test);
    str("template", task.template_text);
    begin("verbalizer");
    for (const auto& [label, word] : task.verbalizer)  // labels too: "true", "0", "~"
      out << YAML::Key << YAML::DoubleQuoted << label << YAML::Value << YAML::DoubleQuoted << word;
    out << YAML::EndMap;
    str("truncate_field", task.truncate_field);
    out << YAML::EndMap;
  }
  out << YAML::EndSeq << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

bool operator==(const ModelSection& a, const ModelSection& b) {
  return std::tie(a.path, a.tokenizer, a.dtype, a.device, a.sharding, a.recompute,
                  a.activation_budget_mb) ==
         std::tie(b.path, b.tokenizer, b.dtype, b.device, b.sharding, b.recompute,
                  b.activation_budget_mb);
}
bool operator==(const PromptSection& a, const PromptSection& b) { return a.length == b.length; }
bool operator==(const CommSection& a, const CommSection& b) {
  return a.backend == b.backend && a.timeout_s == b.timeout_s;
}
bool operator==(const CheckpointSection& a, const CheckpointSection& b) {
  return std::tie(a.dir, a.every_steps, a.keep, a.on_write_error) ==
         std::tie(b.dir, b.every_steps, b.keep, b.on_write_error);
}
bool operator==(const PcaSection& a, const PcaSection& b) {
  return std::tie(a.k, a.source, a.hidden_layer, a.max_tokens) ==
         std::tie(b.k, b.source, b.hidden_layer, b.max_tokens);
}
bool operator==(const LoraSection& a, const LoraSection& b) {
  return std::tie(a.rank, a.alpha, a.dropout, a.targets, a.lr) ==
         std::tie(b.rank, b.alpha, b.dropout, b.targets, b.lr);
}
bool operator==(const TrainSection& a, const TrainSection& b) {
  auto fields = [](const TrainSection& t) {
    return std::tie(t.epochs, t.batch_size, t.grad_accum, t.lr, t.weight_decay, t.warmup_steps,
                    t.schedule, t.max_grad_norm, t.max_length, t.early_stop_patience, t.log_every,
                    t.lambda_orth, t.val_fraction, t.max_train_examples, t.max_bad_steps,
                    t.deterministic, t.unit_size);
  };
  return fields(a) == fields(b);
}
bool operator==(const EvalSection& a, const EvalSection& b) {
  return std::tie(a.batch_size, a.ppl_text, a.max_examples) ==
         std::tie(b.batch_size, b.ppl_text, b.max_examples);
}
bool operator==(const TaskSpec& a, const TaskSpec& b) {
  return std::tie(a.name, a.format, a.train, a.validation, a.test, a.template_text, a.verbalizer,
                  a.truncate_field) == std::tie(b.name, b.format, b.train, b.validation, b.test,
                                                b.template_text, b.verbalizer, b.truncate_field);
}
bool operator==(const RunConfig& a, const RunConfig& b) {
  return std::tie(a.method, a.setting, a.seed, a.reuse_threshold, a.model, a.prompt, a.pca, a.lora,
                  a.train, a.eval, a.comm, a.checkpoint, a.tasks) ==
         std::tie(b.method, b.setting, b.seed, b.reuse_threshold, b.model, b.prompt, b.pca, b.lora,
                  b.train, b.eval, b.comm, b.checkpoint, b.tasks);
}

}  // namespace sparc
